"""Rule matrix_table: the method x dataset matrix (CSV, Markdown, LaTeX, HTML) and its heatmap."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.experiments.matrix import aggregate  # noqa: E402

sm = snakemake  # noqa: F821
aggregate(list(sm.input.metrics), list(sm.params.methods), list(sm.params.datasets), sm.params.scale, sm.output)
