"""Rule l2rw_mnist_table: the MNIST 4-vs-9 test-error table (CSV, Markdown, LaTeX, HTML) and its figure."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.experiments.reweighting import aggregate_mnist  # noqa: E402

sm = snakemake  # noqa: F821
aggregate_mnist(list(sm.input.metrics), sm.input.paper, list(sm.params.rows), sm.params.scale, sm.output)
