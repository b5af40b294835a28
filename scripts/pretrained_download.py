"""Rule pretrained_download: fetch one weights file into pretrained.root, checked against the hash its name carries
(only when the config allows downloads)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.data.pretrained import download  # noqa: E402

target = Path(snakemake.output[0])  # noqa: F821
download(target.name, target.parent, list(snakemake.params.mirrors))  # noqa: F821
