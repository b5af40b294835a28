# Which of the papers' claims reproduce: every claim of config/claims.yaml measured on this run's tables, with a
# 95 % interval over the replicates and a verdict (debias.claims); paths and input functions in claims_common.smk.


rule claims:
    input:
        claims=CLAIMS_FILE,
        tables=claims_tables(),
    output:
        csv=report(f"{RESULTS}/tables/claims.csv", caption="../report/claims.rst", category=CLAIMS_REPORT,
                   labels=report_label("every claim of the four papers: measured value, 95 % interval, verdict")),
        md=f"{RESULTS}/tables/claims.md",
        png=report(f"{RESULTS}/figures/claims.png", caption="../report/claims_figure.rst", category=CLAIMS_REPORT,
                   labels=report_label("every claim, plotted: interval, the paper's value, zero")),
        pdf=f"{RESULTS}/figures/claims.pdf",
    params:
        runs=claims_runs(),
        # COCO's dataset leakage has no replicate column: its attacker's rounds
        n_fill={"coco_leakage": {"dataset": COCO["leakage"]["rounds"]}} if COCO is not None else {},
        scale=SCALE,
    log:
        f"{RESULTS}/logs/claims.log",
    threads: 1
    resources:
        **res("aggregate"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/claims.py"
