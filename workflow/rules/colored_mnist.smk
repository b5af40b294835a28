# Learning Not to Learn on colored MNIST: prepare one dataset per sigma2, train sigma2 x method x seed,
# aggregate into the sigma2 x method table and figure. Paths and input functions: colored_mnist_common.smk.


# One job per sigma2, or (sigma2_per_job: all) one job preparing every sigma2.
rule colored_mnist_prepare:
    input:
        cm_prepare_inputs,
        manifest=manifest_input("colored_mnist_authors" if CM["source"] == "authors" else "mnist"),
    output:
        data=[f"{CM_PREPARED}/sigma2={v}.pt" for v in CM_JOB_SIGMA2],
        recipe=[f"{CM_PREPARED}/sigma2={v}.json" for v in CM_JOB_SIGMA2],
    params:
        # only what the data depends on, so that other config changes do not re-prepare it
        data={k: CM.get(k) for k in ("source", "authors_dir", "colors", "data_seed")},
        mnist=config["mnist"],
        sigma2=cm_job_sigma2,
    log:
        f"{RESULTS}/logs/colored_mnist/prepare_{'sigma2={sigma2}' if CM['sigma2_per_job'] == 1 else 'all_sigma2'}.log",
    threads: 1
    resources:
        **res("prepare"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/colored_mnist_prepare.py"


# One job per seed, or (seeds_per_job: all) one job per (sigma2, method) cell training every seed in one
# process, or (sigma2_per_job: all too) one job per method training every sigma2 and seed, so that interpreter
# start-up and imports do not dominate short runs; paths, sigma2 values and seeds come from CM_JOB_SIGMA2,
# CM_JOB_PATH, CM_JOB_SEEDS, CM_JOB_NAME (colored_mnist_common.smk). Rows that start from another row's model
# (`init_from`, e.g. lnl) train in a rule of their own, colored_mnist_train_from_init: the same job, but a
# separate node in the rule graph (Snakemake draws a rule once per dependency level).
for _name, _rows in (("colored_mnist_train", CM_ROWS_FROM_SCRATCH), ("colored_mnist_train_from_init", CM_ROWS_FROM_INIT)):
    if not _rows:
        continue

    rule:
        name:
            _name
        wildcard_constraints:
            method="|".join(_rows),
        input:
            unpack(cm_train_inputs),
        output:
            metrics=[cm_run(v, "{method}", s, "metrics.json") for v in CM_JOB_SIGMA2 for s in CM_JOB_SEEDS],
            model=[cm_run(v, "{method}", s, "model.pt") for v in CM_JOB_SIGMA2 for s in CM_JOB_SEEDS],
        params:
            sigma2=cm_job_sigma2,
            seeds=cm_job_seeds,
            state=lambda wc: [_paths.cm_state(RESULTS, v, wc.method, s)
                              for v in cm_job_sigma2(wc) for s in cm_job_seeds(wc)],
            hparams=lambda wc: CM["hparams"][wc.method],  # this row's only: other rows' edits rerun nothing here
            model=CM["model"],
            train=CM["train"],
            device=config["device"],
        log:
            f"{RESULTS}/logs/colored_mnist/{CM_JOB_PATH}/{CM_JOB_NAME}.log",
        benchmark:
            cm_bench(CM_JOB_PATH, CM_JOB_NAME)
        threads: threads_of("train_small")
        resources:
            **res("train_small"),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/colored_mnist_train.py"


rule colored_mnist_table:
    input:
        metrics=expand(cm_run("{sigma2}", "{method}", "{seed}", "metrics.json"),
                       sigma2=CM_SIGMA2, method=CM_ROWS, seed=CM_SEEDS),
        paper="config/paper_values.yaml",
    output:
        csv=report(f"{RESULTS}/tables/colored_mnist.csv", caption="../report/colored_mnist_table.rst",
                   category=CM_REPORT, labels=report_label("the paper's Figure 3 (a table in the paper), tidy CSV")),
        md=f"{RESULTS}/tables/colored_mnist.md",
        tex=f"{RESULTS}/tables/colored_mnist.tex",
        html=report(f"{RESULTS}/tables/colored_mnist.html", caption="../report/colored_mnist_table.rst",
                    category=CM_REPORT, labels=report_label("the paper's Figure 3 (a table in the paper): test accuracy per σ² and method")),
        png=report(f"{RESULTS}/figures/colored_mnist.png", caption="../report/colored_mnist_figure.rst",
                   category=CM_REPORT, labels=report_label("the paper's Figure 3, plotted: test accuracy against σ²")),
        pdf=f"{RESULTS}/figures/colored_mnist.pdf",
    params:
        rows=CM_ROWS,
        scale=SCALE,
        source=CM["source"],
    log:
        f"{RESULTS}/logs/colored_mnist/table.log",
    threads: 1
    resources:
        **res("aggregate"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/colored_mnist_table.py"
