"""Rule colored_mnist_prepare: one colored-MNIST file per sigma2, with its sha256 and recipe beside it."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.experiments.colored_mnist import prepare  # noqa: E402

sm = snakemake  # noqa: F821
for sigma2, data, recipe in zip(sm.params.sigma2, sm.output.data, sm.output.recipe):
    prepare(sm.params.data, sm.params.mnist, float(sigma2), data, recipe)
