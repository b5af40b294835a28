# Costs: the step time of every method on the run's device, and what every training job cost (from the
# `benchmark:` files Snakemake writes for each training job). Both appear in the report under "Benchmarks".
BENCH_REPORT = "Benchmarks"


# A hand run, `python -m debias.benchmark`, writes results/benchmarks/step_cost_manual.csv and refuses this
# rule's path (Snakemake would take its file for up to date).
rule step_cost:
    output:
        csv=report(f"{RESULTS}/benchmarks/step_cost.csv", caption="../report/step_cost.rst",
                   category=BENCH_REPORT, labels=report_label("ms per training step of every method")),
    params:
        device=config["device"],
        warmup=config["benchmark"]["warmup"],
        repeats=config["benchmark"]["repeats"],
    log:
        f"{RESULTS}/logs/benchmarks/step_cost.log",
    threads: threads_of("train")
    resources:
        **res("train"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/step_cost.py"


# Throughput of every experiment's network at its configured (full-scale) settings: the GPU benchmark
# (`snakemake benchmarks` on a GPU node). A hand run, `python -m debias.throughput`, writes
# results/benchmarks/throughput_manual.csv and refuses this rule's path.
rule throughput:
    output:
        csv=report(f"{RESULTS}/benchmarks/throughput.csv", caption="../report/throughput.rst",
                   category=BENCH_REPORT, labels=report_label("steps/s, images/s, GPU memory and utilisation of every network")),
        projection=report(f"{RESULTS}/benchmarks/throughput_projection.csv", caption="../report/throughput_projection.rst",
                          category=BENCH_REPORT, labels=report_label("device hours of each table row, one run at a time and batched (projection)")),
    params:
        device=config["device"],
        throughput=config["benchmark"]["throughput"],
    log:
        f"{RESULTS}/logs/benchmarks/throughput.log",
    threads: threads_of("train")
    resources:
        **res("train"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/throughput.py"


rule job_costs:
    input:
        cm_bench_files(),
        rw_bench_files(),
        coco_bench_files(),
        wb_bench_files(),
        mx_bench_files(),
    output:
        csv=report(f"{RESULTS}/benchmarks/job_costs.csv", caption="../report/job_costs.rst",
                   category=BENCH_REPORT, labels=report_label("wall time, CPU time, memory of every training job")),
    params:
        names=lambda wc, input: [str(Path(p).relative_to(BENCH_JOBS).with_suffix("")) for p in input],
    log:
        f"{RESULTS}/logs/benchmarks/job_costs.log",
    threads: 1
    resources:
        **res("aggregate"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/job_costs.py"
