"""Rule mnist_embedded: write the 5,000 embedded digits into torchvision's raw MNIST layout."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

import logging  # noqa: E402

from debias.data.mini.mnist import write_embedded_mnist  # noqa: E402

root = Path(snakemake.output[0]).parents[2]  # noqa: F821  (<root>/MNIST/raw/<file>)
counts = write_embedded_mnist(root, test_per_class=snakemake.params.test_per_class)  # noqa: F821
logging.info("embedded MNIST written to %s: %s", root, counts)
