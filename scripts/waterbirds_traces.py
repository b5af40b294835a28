"""Rule waterbirds_traces: the ERM model's per-sample Fisher traces on the training split by group (figure, CSV)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.experiments.waterbirds import traces_figure  # noqa: E402

sm = snakemake  # noqa: F821
traces_figure(list(sm.input.metrics), sm.params.scale, sm.output)
