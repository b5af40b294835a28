"""Rule waterbirds_table: every metrics.json -> tidy CSV -> Markdown, LaTeX; per-group accuracy figure."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.experiments.waterbirds import aggregate  # noqa: E402

sm = snakemake  # noqa: F821
aggregate(list(sm.input.metrics), sm.input.paper, list(sm.params.rows), sm.params.scale, sm.output)
