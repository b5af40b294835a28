"""Rule fairface_embedded: write a FairFace-format dataset (CSVs + JPEGs) from the embedded digits."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

import logging  # noqa: E402

from debias.data.mini.fairface import write_embedded_fairface  # noqa: E402

sm = snakemake  # noqa: F821
root = Path(sm.output[0]).parent
counts = write_embedded_fairface(root, sm.params.image_dir, test_per_class=sm.params.test_per_class)
logging.info("FairFace-format mini dataset written to %s: %s", root, counts)
