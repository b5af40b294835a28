"""Rule reweighting_split: train / val / test indices of every seed for one majority share."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.experiments.reweighting import build_splits  # noqa: E402

sm = snakemake  # noqa: F821
for share, out in zip(sm.params.shares, sm.output.split):
    build_splits(sm.input[0], sm.params.section, float(share), list(sm.params.seeds), out)
