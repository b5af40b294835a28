"""Rule coco_f1_leakage: Wang's F1-matched dataset leakage curves (the attacker on ground truth flipped at each
rate of coco.f1_matched.flip_rates), one curve per job or (cells_per_job: all) every curve in this process."""
# The curve's rates run in spawned processes (workers > 1), which import this file again as "__mp_main__"
# (Snakemake's preamble, which defines `snakemake`, is not part of it): only the job itself runs the body.
if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

    from debias.jobs import start_job  # noqa: E402

    start_job(snakemake)  # noqa: F821

    from debias.experiments.coco_leakage import f1_curve_job  # noqa: E402

    sm = snakemake  # noqa: F821
    for (_stem, mode, split), out in zip(sm.params.curves, list(sm.output), strict=True):
        f1_curve_job(labels=sm.input.labels, mode=mode, split=split, attacker=dict(sm.params.attacker),
                     rates=[float(r) for r in sm.params.rates], out=out, workers=sm.threads)
