"""Rule step_cost: ms per training step of every registered method, on the run's device."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.benchmark import run, write_csv  # noqa: E402
from debias.devices import resolve_device  # noqa: E402

sm = snakemake  # noqa: F821
write_csv(run(resolve_device(sm.params.device), sm.params.warmup, sm.params.repeats), sm.output.csv)
