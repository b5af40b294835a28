"""Rule coco_embedded: write the mini COCO-format gender dataset from the embedded digits."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.data.mini.coco import write_embedded_coco  # noqa: E402

root = Path(snakemake.output[0]).parents[1]  # noqa: F821  (<root>/annotations/<file>)
print(write_embedded_coco(root, **dict(snakemake.params.generator)))  # noqa: F821
