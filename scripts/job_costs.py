"""Rule job_costs: the per-job benchmark files of Snakemake (wall time, CPU time, peak memory) in one CSV."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.job_costs import write_job_costs  # noqa: E402

sm = snakemake  # noqa: F821
write_job_costs(list(sm.input), list(sm.params.names), sm.output.csv)
