"""The paper's Figures 1-4 (paper 001): which split and which range of majority shares each one shows, and the
companion figures with the accuracy of each class, where a mean over both hides a collapse to one class.

Kept free of torch: the workflow reads it while it builds the DAG (file names, report labels).
"""

FAIRFACE_FIGURES = {"60-90": (0.5, 0.9), "91-99": (0.91, 0.99)}  # file tag -> share range (0.5: balanced baseline)
SPLITS = ("train", "test")
PAPER_FIGURE = {("train", "60-90"): 1, ("test", "60-90"): 2, ("train", "91-99"): 3, ("test", "91-99"): 4}
KINDS = ("acc", "per_class")  # the paper's figure (accuracy over all images) | accuracy of each class
# the majority shares each figure's x axis stands for: the paper's (0.5: its balanced baseline) and Ren et al.'s
# MNIST grid. A line joins two shares only where no share of the grid lies between them, and the methods' x offsets
# are a fraction of the grid's step.
PAPER_SHARES = {"60-90": (0.5, 0.6, 0.7, 0.8, 0.9), "91-99": tuple(round(0.91 + 0.01 * i, 2) for i in range(9)),
                "l2rw_mnist": (0.9, 0.95, 0.98, 0.99, 0.995)}
# what the paper's text says of each figure: it prints no values, and its figures are not in the text we have
PAPER_TEXT = {
    ("train", "60-90"): "the training accuracy of the baseline, hard mining, ratio (proportion) and autodiff "
                        "(learning-to-reweight) generally decreases as the imbalance grows, the baseline with a spike "
                        "at 70 %; random reweighting reaches 70 % to 80 % at 80 % to 90 % majority",
    ("test", "60-90"): "all of the models have a test accuracy of about 50 %, autodiff (learning-to-reweight) "
                       "generally below the baseline, hard mining and random the highest",
    ("train", "91-99"): "autodiff (learning-to-reweight) and ratio (proportion) decline steadily, the other models "
                        "spike, from about 10 % to 80 %",
    ("test", "91-99"): "all models still have about 50 % accuracy, autodiff, ratio and the baseline the most stable",
}
# methods the paper describes but draws in none of its figures (protocol D9): marked so in the legends
NOT_IN_PAPER_FIGURES = {"resample": "resample (not in the paper's figures)"}


def figure_stem(kind: str, split: str, tag: str) -> str:
    return f"fairface_{split}_{kind}_{tag}"


def figure_keys() -> dict[str, tuple[str, str, str]]:
    """Every figure's file stem -> (kind, split, tag), in drawing order."""
    return {figure_stem(k, s, t): (k, s, t) for k in KINDS for s in SPLITS for t in FAIRFACE_FIGURES}


def figure_key(stem: str) -> tuple[str, str, str]:
    """(kind, split, tag) of a figure's file stem, looked up, not parsed."""
    keys = figure_keys()
    if stem not in keys:
        raise ValueError(f"{stem!r} is not a FairFace figure; expected one of {', '.join(keys)}")
    return keys[stem]


def figure_stems() -> list[str]:
    return list(figure_keys())


def share_step(tag: str) -> float:
    """The step of the grid a figure's x axis stands for (0.1 for 60-90, 0.01 for 91-99)."""
    grid = PAPER_SHARES[tag]
    return min(b - a for a, b in zip(grid, grid[1:]))


def figure_caption(stem: str, scale: str, methods: list[str], shares: list[float], n_seeds: list[int],
                   offset: float) -> str:
    """The report's caption of one FairFace figure, from what it draws: which split, share range and kind, the
    shares and seeds of this run, and what the paper says of its own figure (it prints no values)."""
    kind, split, tag = figure_key(stem)
    lo, hi = FAIRFACE_FIGURES[tag]
    fig = PAPER_FIGURE[(split, tag)]
    seeds = f"{min(n_seeds)}" if min(n_seeds) == max(n_seeds) else f"{min(n_seeds)}–{max(n_seeds)}"
    what = (f"**Example reweighting (paper 001), FairFace: {split} accuracy, {split} split, White share "
            f"{lo:.2f}–{hi:.2f}: the paper's Figure {fig}.**" if kind == "acc" else
            f"**Example reweighting (paper 001), FairFace: {split} accuracy per class, {split} split, White share "
            f"{lo:.2f}–{hi:.2f}: companion of the paper's Figure {fig}.** Two panels, the accuracy on White images "
            "(the majority) and on the six other groups apart, where a mean over both hides a model that predicts "
            "one class for everything.")
    return " ".join([
        what,
        f"Per method ({', '.join(methods)}) the mean over seeds as a marker of its own shape; a line in its own"
        " style joins two shares only where no share of the paper's"
        f" grid ({', '.join(f'{v:g}' for v in PAPER_SHARES[tag])}) lies between them; every seed's value is a dot."
        f" The methods are shifted along x by at most {offset:.4f} (a small fraction of the grid's step,"
        f" {share_step(tag):g}) so that equal values stay visible; y runs from 0 to 1.",
        f"This run: shares {', '.join(f'{v:g}' for v in shares)}, {seeds} seeds ({scale} scale)"
        + ("; 0.5 is the baseline trained on a balanced set, as the paper's." if lo <= 0.5 else "."),
        f"**The paper's curves are not drawn:** the paper prints no values, and its text says only that "
        f"{PAPER_TEXT[(split, tag)]}" + (" (of its accuracy over all images: it draws no per-class accuracy)."
                                         if kind == "per_class" else "."),
        *(["Mini scale: the FairFace layout filled with embedded digits (4 = White, 9 = the other groups): compare "
           "the ordering of the methods, not the values."] if scale == "mini" else []),
    ]) + "\n"
