"""Rule throughput: steps/s, images/s, memory and utilisation of every experiment's network on the run's device."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.devices import resolve_device  # noqa: E402
from debias.throughput import measure_and_write, select_cases  # noqa: E402

sm = snakemake  # noqa: F821
tp = sm.params.throughput
measure_and_write(sm.config, select_cases(sm.config, tp["compiled"]), resolve_device(sm.params.device),
                  tp["seconds"], tp["warmup"], sm.output.csv, sm.output.projection)
