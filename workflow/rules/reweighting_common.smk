# Example reweighting: paths and input functions of the rules in reweighting.smk (the paths: debias.paths).
from debias import paths as _paths

RW = config["reweighting"]
RW_EXPS = list(_paths.RW_EXPS)
RW_SHARES = {exp: _paths.rw_shares(RW, exp) for exp in RW_EXPS}
# Methods also trained on a balanced training set (share 0.5): the paper's balanced baseline (protocol D4)
RW_BALANCED = {exp: _paths.rw_balanced(RW, exp) for exp in RW_EXPS}
BALANCED_SHARE = _paths.BALANCED_SHARE
# the split files a job of `shares_per_job: all` writes: the table's shares, the balanced one, the matrix's
RW_SPLIT_SHARES = {exp: list(dict.fromkeys(RW_SHARES[exp] + ([BALANCED_SHARE] if RW_BALANCED[exp] else [])
                                           + _paths.mx_rw_shares(config, exp))) for exp in RW_EXPS}
FF = RW["fairface"]
FF_CSVS = [f"{FF['root']}/fairface_label_{s}.csv" for s in ("train", "val")]
from debias.experiments import reweighting_figures as _ff_figures

# each figure with its report caption beside it (.rst, written by the rule from what it draws)
FAIRFACE_FIGURES = expand(f"{RESULTS}/figures/{{stem}}.{{ext}}", stem=_ff_figures.figure_stems(), ext=["png", "pdf", "rst"])


def fairface_figure_labels(path):
    """Report label of one FairFace figure: which of the paper's Figures 1-4 it redraws or accompanies (see
    report_label)."""
    kind, split, band = _ff_figures.figure_key(Path(path).stem)
    lo, hi = _ff_figures.FAIRFACE_FIGURES[band]
    fig = _ff_figures.PAPER_FIGURE[(split, band)]
    if kind == "acc":
        return report_label(f"the paper's Figure {fig}: {split} accuracy, White share {lo:.2f}–{hi:.2f}")
    return report_label(f"companion of the paper's Figure {fig}: {split} accuracy per class (White, other), "
                        f"White share {lo:.2f}–{hi:.2f}")


def reweighting_outputs():
    return [
        *expand(f"{RESULTS}/tables/fairface_reweighting.{{ext}}", ext=["csv", "md", "tex", "html"]),
        *FAIRFACE_FIGURES,
        *expand(f"{RESULTS}/tables/l2rw_mnist.{{ext}}", ext=["csv", "md", "tex", "html"]),
        *expand(f"{RESULTS}/figures/l2rw_mnist.{{ext}}", ext=["png", "pdf"]),
    ]


RW_REPORT = "Example reweighting (001, FairFace and the L2RW MNIST grid)"


def rw_bench(exp, share, method):
    """Snakemake's benchmark file of a training job; share None when one job trains every share."""
    return f"{BENCH_JOBS}/{exp}/" + (f"share={share}/" if share else "") + f"{method}.tsv"


def rw_bench_files():
    return [
        rw_bench(exp, share, m)
        for exp in RW_EXPS
        for share in (RW_SHARES[exp] if RW["shares_per_job"] == 1 else [None])
        for m in RW["methods"]
    ] + [rw_bench(exp, BALANCED_SHARE, m) for exp in RW_EXPS for m in RW_BALANCED[exp]]


def rw_run(exp, share, method, seed, name):
    return _paths.rw_run(RESULTS, exp, share, method, seed, name)


def rw_metrics(exp):
    """Every run's metrics.json: shares x methods, plus the balanced share for its methods."""
    return [rw_run(exp, share, m, s, "metrics.json") for share, m, s in _paths.rw_keys(RW, exp)]


def fairface_sources():
    """The label CSVs when they exist or a rule writes them (mini); else nothing, and the job reports them."""
    from pathlib import Path

    if FF["source"] == "embedded" or all(Path(p).is_file() for p in FF_CSVS):
        return FF_CSVS
    return []
