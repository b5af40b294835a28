# Waterbirds (paper 002): data -> prepare (decode once) -> train (row x seed, x ε percentile for fisher_flat;
# GPU) -> the table and the per-group figure, and the ERM traces-by-group figure. Paths: waterbirds_common.smk.

if WB["source"] == "embedded":

    rule waterbirds_embedded:
        output:
            wb_data_input(),
        params:
            generator=coco_sorted(WB.get("embedded", {})),
        log:
            f"{RESULTS}/logs/data/waterbirds_embedded.log",
        threads: 1
        resources:
            **res("prepare"),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/waterbirds_embedded.py"

elif config["allow_download"] and not Path(wb_data_input()).is_file():
    # defined only while the release is missing (never deletes a user's copy); without downloads the files have
    # no rule, so Snakemake stops before any job a run that needs them (config.py warns with the key)

    rule waterbirds_download:
        output:
            wb_data_input(),
        params:
            section=coco_sorted({k: WB.get(k) for k in ("source", "root", "download")}),
        log:
            f"{RESULTS}/logs/data/waterbirds_download.log",
        threads: 1
        resources:
            **res("prepare"),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/waterbirds_download.py"


rule waterbirds_prepare:
    input:
        wb_data_input(),
        manifest=manifest_input("waterbirds"),
    output:
        data=f"{WB_PREPARED}/data.pt",
        recipe=f"{WB_PREPARED}/recipe.json",
    params:
        section=coco_sorted({k: WB.get(k) for k in ("source", "root", "image")}),  # only what the data depends on
    log:
        f"{RESULTS}/logs/waterbirds/prepare.log",
    threads: threads_of("prepare_photo")
    resources:
        **res("prepare_photo"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/waterbirds_prepare.py"


# One job per (row, variant, seed), or (seeds_per_job: all) one job per (row, variant) training every seed in
# one process. Its params hold its own row's hparams only, so editing one row reruns only that row's jobs.
rule waterbirds_train:
    input:
        data=rules.waterbirds_prepare.output.data,
        **pretrained_input("waterbirds"),
    output:
        metrics=[wb_run("{row}", "{variant}", s, "metrics.json") for s in WB_JOB_SEEDS],
        model=[wb_run("{row}", "{variant}", s, "model.pt") for s in WB_JOB_SEEDS],
    params:
        seeds=wb_job_seeds,
        epsilon_percentile=wb_percentile,
        state=lambda wc: [_paths.wb_state(RESULTS, wc.row, wc.variant, s) for s in wb_job_seeds(wc)],
        hparams=lambda wc: coco_sorted(WB["hparams"][wc.row]),
        model=coco_sorted(WB["model"]),
        train=coco_sorted(WB["train"]),
        device=config["device"],
    log:
        f"{RESULTS}/logs/waterbirds/{{row}}/{{variant}}/{WB_JOB_NAME}.log",
    benchmark:
        f"{BENCH_JOBS}/waterbirds/{{row}}/{{variant}}/{WB_JOB_NAME}.tsv"
    wildcard_constraints:
        row="|".join(WB["methods"]),
        variant=rf"default|{WB_EPS_PREFIX}\d+(\.\d+)?",
    threads: threads_of("train")
    resources:
        **res("train"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/waterbirds_train.py"


rule waterbirds_table:
    input:
        metrics=wb_metrics(),
        paper="config/paper_values.yaml",
    output:
        csv=report(f"{RESULTS}/tables/waterbirds.csv", caption="../report/waterbirds_table.rst", category=WB_REPORT,
                   labels=report_label("the paper's Table 1, tidy CSV")),
        md=f"{RESULTS}/tables/waterbirds.md",
        tex=f"{RESULTS}/tables/waterbirds.tex",
        html=report(f"{RESULTS}/tables/waterbirds.html", caption="../report/waterbirds_table.rst", category=WB_REPORT,
                    labels=report_label("the paper's Table 1: average and worst-group test accuracy")),
        png=report(f"{RESULTS}/figures/waterbirds_groups.png", caption="../report/waterbirds_groups.rst",
                   category=WB_REPORT, labels=report_label("the paper's Table 1, per group: test accuracy of each group")),
        pdf=f"{RESULTS}/figures/waterbirds_groups.pdf",
    params:
        rows=WB["methods"],
        scale=SCALE,
    log:
        f"{RESULTS}/logs/waterbirds/table.log",
    threads: 1
    resources:
        **res("aggregate"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/waterbirds_table.py"


if wb_trace_rows():

    rule waterbirds_traces:
        input:
            metrics=wb_metrics(wb_trace_rows()[:1]),
        output:
            csv=report(f"{RESULTS}/tables/waterbirds_traces.csv", caption="../report/waterbirds_traces.rst",
                       category=WB_REPORT, labels=report_label("the paper's premise, in numbers: tidy CSV")),
            md=f"{RESULTS}/tables/waterbirds_traces.md",
            tex=f"{RESULTS}/tables/waterbirds_traces.tex",
            html=report(f"{RESULTS}/tables/waterbirds_traces.html", caption="../report/waterbirds_traces.rst",
                        category=WB_REPORT, labels=report_label("the paper's premise, in numbers: traces by group")),
            png=report(f"{RESULTS}/figures/waterbirds_traces.png", caption="../report/waterbirds_traces.rst",
                       category=WB_REPORT, labels=report_label("the paper's premise: ERM's per-sample Fisher traces by group")),
            pdf=f"{RESULTS}/figures/waterbirds_traces.pdf",
        params:
            scale=SCALE,
        log:
            f"{RESULTS}/logs/waterbirds/traces.log",
        threads: 1
        resources:
            **res("aggregate"),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/waterbirds_traces.py"
