"""The paper's Figures 1-4 (paper 001): which split and which range of majority shares each one shows, and the
companion figures with the accuracy of each class, where a mean over both hides a collapse to one class.

Kept free of torch: the workflow reads it while it builds the DAG (file names, report labels).
"""

FAIRFACE_FIGURES = {"60-90": (0.5, 0.9), "91-99": (0.91, 0.99)}  # file tag -> share range (0.5: balanced baseline)
SPLITS = ("train", "test")
PAPER_FIGURE = {("train", "60-90"): 1, ("test", "60-90"): 2, ("train", "91-99"): 3, ("test", "91-99"): 4}
KINDS = ("acc", "per_class")  # the paper's figure (accuracy over all images) | accuracy of each class
# methods the paper describes but draws in none of its figures (protocol D9): marked so in the legends
NOT_IN_PAPER_FIGURES = {"resample": "resample (not in the paper's figures)"}


def figure_stem(kind: str, split: str, tag: str) -> str:
    return f"fairface_{split}_{kind}_{tag}"


def parse_stem(stem: str) -> tuple[str, str, str]:
    """figure_stem's inverse: (kind, split, tag)."""
    split, rest = stem.removeprefix("fairface_").split("_", 1)
    kind, tag = rest.rsplit("_", 1)
    return kind, split, tag


def figure_stems() -> list[str]:
    return [figure_stem(k, s, t) for k in KINDS for s in SPLITS for t in FAIRFACE_FIGURES]
