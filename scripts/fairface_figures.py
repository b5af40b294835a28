"""Rule fairface_figures: the paper's Figures 1-4 (each with its report caption) and the tables behind them."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.experiments.reweighting import aggregate_fairface  # noqa: E402

sm = snakemake  # noqa: F821
aggregate_fairface(list(sm.input), list(sm.params.rows), sm.params.scale, sm.output)
