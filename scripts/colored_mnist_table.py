"""Rule colored_mnist_table: all metrics.json -> tidy CSV -> Markdown, LaTeX, figure (PNG and PDF)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.experiments.colored_mnist import aggregate  # noqa: E402

sm = snakemake  # noqa: F821
aggregate(list(sm.input.metrics), sm.input.paper, sm.params.rows, sm.params.scale, sm.params.source, sm.output)
