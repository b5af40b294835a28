"""Rule waterbirds_embedded: write the mini Waterbirds-format folder from the embedded digits."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.data.mini.waterbirds import write_embedded_waterbirds  # noqa: E402

root = Path(snakemake.output[0]).parents[1]  # noqa: F821  (<root>/<release folder>/metadata.csv)
print(write_embedded_waterbirds(root, **dict(snakemake.params.generator)))  # noqa: F821
