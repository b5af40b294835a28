# Example reweighting on FairFace (paper 001, Figures 1-4) and the learning-to-reweight MNIST 4-vs-9 grid:
# a pool per experiment, one split file per majority share (all seeds), share x method jobs training every
# seed in one process, then the figures and tables.


wildcard_constraints:
    exp="fairface|l2rw_mnist",
    share=r"\d\.\d{3}",


if FF["source"] == "embedded":

    rule fairface_embedded:
        output:
            FF_CSVS,
        params:
            image_dir=FF["image_dirs"][str(FF["padding"])],
            test_per_class=config["mnist"].get("test_per_class", 100),
        log:
            f"{RESULTS}/logs/data/fairface_embedded.log",
        threads: 1
        resources:
            **res("prepare"),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/fairface_embedded.py"


rule fairface_pool:
    input:
        fairface_sources(),
        manifest=manifest_input("fairface"),
    output:
        pool=f"{RESULTS}/prepared/fairface/pool.pt",
        recipe=f"{RESULTS}/prepared/fairface/pool.json",
    params:
        fairface={k: FF[k] for k in ("source", "root", "padding", "image_dirs", "image_size")},
    log:
        f"{RESULTS}/logs/fairface/pool.log",
    threads: threads_of("prepare")
    resources:
        **res("prepare"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/reweighting_pool.py"


rule l2rw_mnist_pool:
    input:
        MNIST_RAW,
        manifest=manifest_input("mnist"),
    output:
        pool=f"{RESULTS}/prepared/l2rw_mnist/pool.pt",
        recipe=f"{RESULTS}/prepared/l2rw_mnist/pool.json",
    params:
        mnist=config["mnist"],
    log:
        f"{RESULTS}/logs/l2rw_mnist/pool.log",
    threads: 1
    resources:
        **res("prepare"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/reweighting_pool.py"


# Per experiment, one job per share, or (shares_per_job: all) one job writing every share's split file.
for _exp in RW_EXPS:
    _split_shares = ["{share}"] if RW["shares_per_job"] == 1 else RW_SPLIT_SHARES[_exp]

    rule:
        name:
            f"{_exp}_split"
        input:
            f"{RESULTS}/prepared/{_exp}/pool.pt",
        output:
            split=[f"{RESULTS}/prepared/{_exp}/share={s}.pt" for s in _split_shares],
            recipe=[f"{RESULTS}/prepared/{_exp}/share={s}.json" for s in _split_shares],
        params:
            section={k: v for k, v in RW[_exp].items() if k in ("n_train", "n_val_per_class", "n_test_per_class",
                                                               "val_from_budget")},
            seeds=RW["seeds"],
            shares=lambda wc, _exp=_exp: [wc.share] if RW["shares_per_job"] == 1 else RW_SPLIT_SHARES[_exp],
        log:
            f"{RESULTS}/logs/{_exp}/split_{'share={share}' if RW['shares_per_job'] == 1 else 'all_shares'}.log",
        threads: 1
        resources:
            **res("prepare"),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/reweighting_split.py"


# Per experiment, one job per (share, method) training every seed, or (shares_per_job: all) one job per method
# training every share and seed. The balanced share (0.5, methods in `balanced_reference`) has jobs of its own.
for _exp in RW_EXPS:
    _per_share = RW["shares_per_job"] == 1
    for _kind, _shares, _methods in (
        ("train", ["{share}"] if _per_share else RW_SHARES[_exp], RW["methods"]),
        ("train_balanced", [BALANCED_SHARE], RW_BALANCED[_exp]),
    ):
        if not _methods:
            continue
        # the share in the job's log and benchmark paths: the wildcard, the balanced share, or none (all shares)
        _job_share = "{share}" if _per_share and _kind == "train" else (BALANCED_SHARE if _kind == "train_balanced" else None)
        _tag = f"share={_job_share}/" if _job_share else ""

        rule:
            name:
                f"{_exp}_{_kind}"
            wildcard_constraints:
                share="|".join(s.replace(".", r"\.") for s in RW_SHARES[_exp]),
                method="|".join(_methods),
            input:
                pool=f"{RESULTS}/prepared/{_exp}/pool.pt",
                splits=[f"{RESULTS}/prepared/{_exp}/share={s}.pt" for s in _shares],
            output:
                metrics=[rw_run(_exp, s, "{method}", k, "metrics.json") for s in _shares for k in RW["seeds"]],
                model=[rw_run(_exp, s, "{method}", k, "model.pt") for s in _shares for k in RW["seeds"]],
            params:
                exp=_exp,
                shares=lambda wc, _shares=_shares: [s.format(share=wc.get("share")) for s in _shares],
                hparams=lambda wc, _exp=_exp: RW[_exp]["hparams"][wc.method],
                train=RW["train"],
                model=RW["model"],
                seeds=RW["seeds"],
                state=lambda wc, _exp=_exp, _shares=_shares: [
                    _paths.rw_state(RESULTS, _exp, s.format(share=wc.get("share")), wc.method, k)
                    for s in _shares
                    for k in RW["seeds"]
                ],
                device=config["device"],
            log:
                f"{RESULTS}/logs/{_exp}/{_tag}{{method}}/train.log",
            benchmark:
                rw_bench(_exp, _job_share, "{method}")
            threads: threads_of("train_small")
            resources:
                **res("train_small"),
            conda:
                "../../envs/torch.yaml"
            script:
                "../../scripts/reweighting_train.py"


rule fairface_figures:
    input:
        rw_metrics("fairface"),
    output:
        csv=report(f"{RESULTS}/tables/fairface_reweighting.csv", caption="../report/fairface_table.rst",
                   category=RW_REPORT, subcategory="FairFace", labels=report_label("the paper's Figures 1–4 as numbers, tidy CSV")),
        md=f"{RESULTS}/tables/fairface_reweighting.md",
        tex=f"{RESULTS}/tables/fairface_reweighting.tex",
        html=report(f"{RESULTS}/tables/fairface_reweighting.html", caption="../report/fairface_table.rst",
                    category=RW_REPORT, subcategory="FairFace", labels=report_label("the paper's Figures 1–4 as numbers: accuracy per White share, method and split")),
        # each figure's caption is written beside it by the rule, from what it draws (split, share range, kind):
        # a caption template sees the job, not which of its outputs it describes
        figures=[
            report(f, caption=str(Path(f).with_suffix(".rst").resolve()), category=RW_REPORT,
                   subcategory="FairFace", labels=fairface_figure_labels(f)) if f.endswith(".png") else f
            for f in FAIRFACE_FIGURES
        ],
    params:
        rows=RW["methods"],
        scale=SCALE,
    log:
        f"{RESULTS}/logs/fairface/figures.log",
    threads: 1
    resources:
        **res("aggregate"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/fairface_figures.py"


rule l2rw_mnist_table:
    input:
        metrics=rw_metrics("l2rw_mnist"),
        paper="config/paper_values.yaml",
    output:
        csv=report(f"{RESULTS}/tables/l2rw_mnist.csv", caption="../report/l2rw_mnist_table.rst",
                   category=RW_REPORT, subcategory="MNIST 4 vs 9", labels=report_label("Figure 3 of Ren et al. 2018 as a table, tidy CSV")),
        md=f"{RESULTS}/tables/l2rw_mnist.md",
        tex=f"{RESULTS}/tables/l2rw_mnist.tex",
        html=report(f"{RESULTS}/tables/l2rw_mnist.html", caption="../report/l2rw_mnist_table.rst",
                    category=RW_REPORT, subcategory="MNIST 4 vs 9", labels=report_label("Figure 3 of Ren et al. 2018 (plotted there) as a table: test error per majority share and method")),
        png=report(f"{RESULTS}/figures/l2rw_mnist.png", caption="../report/l2rw_mnist_figure.rst",
                   category=RW_REPORT, subcategory="MNIST 4 vs 9", labels=report_label("Figure 3 of Ren et al. 2018, plotted: test error per majority share")),
        pdf=f"{RESULTS}/figures/l2rw_mnist.pdf",
    params:
        rows=RW["methods"],
        scale=SCALE,
    log:
        f"{RESULTS}/logs/l2rw_mnist/table.log",
    threads: 1
    resources:
        **res("aggregate"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/l2rw_mnist_table.py"
