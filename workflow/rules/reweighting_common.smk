# Example reweighting: paths and input functions of the rules in reweighting.smk.
RW = config["reweighting"]
RW_EXPS = ["fairface", "l2rw_mnist"]
RW_SHARES = {exp: [f"{s:.3f}" for s in RW[exp]["shares"]] for exp in RW_EXPS}
FF = RW["fairface"]
FF_CSVS = [f"{FF['root']}/fairface_label_{s}.csv" for s in ("train", "val")]
FAIRFACE_FIGURES = expand(
    f"{RESULTS}/figures/fairface_{{split}}_acc_{{band}}.{{ext}}",
    split=["train", "test"],
    band=["60-90", "91-99"],
    ext=["png", "pdf"],
)


def reweighting_outputs():
    return [
        f"{RESULTS}/tables/fairface_reweighting.csv",
        *FAIRFACE_FIGURES,
        *expand(f"{RESULTS}/tables/l2rw_mnist.{{ext}}", ext=["csv", "md", "tex"]),
    ]


def rw_run(exp, share, method, seed, name):
    return f"{RESULTS}/runs/{exp}/share={share}/{method}/seed={seed}/{name}"


def rw_metrics(exp):
    return expand(
        rw_run(exp, "{share}", "{method}", "{seed}", "metrics.json"),
        share=RW_SHARES[exp],
        method=RW["methods"],
        seed=RW["seeds"],
    )


def fairface_sources():
    """The label CSVs when they exist or a rule writes them (mini); else nothing, and the job reports them."""
    from pathlib import Path

    if FF["source"] == "embedded" or all(Path(p).is_file() for p in FF_CSVS):
        return FF_CSVS
    return []
