"""Rule mnist_download: fetch MNIST into <root>/MNIST/raw (only when the config allows downloads)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.data.mnist import download_mnist  # noqa: E402

p = snakemake.params  # noqa: F821
root = Path(snakemake.output[0]).parents[2]  # noqa: F821  (<root>/MNIST/raw/<file>)
download_mnist(root, p.mirrors)
