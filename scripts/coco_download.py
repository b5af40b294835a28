"""Rule coco_download: fetch COCO 2014 (and Wang et al.'s split files) when the config allows downloads."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.data.coco_download import download, missing  # noqa: E402

section = dict(snakemake.params.section)  # noqa: F821
if not snakemake.config["allow_download"]:  # noqa: F821
    raise SystemExit(f"COCO data missing ({', '.join(map(str, missing(section)))}; config keys coco.root, "
                     "coco.wang_dir) and allow_download is false")
download(section)
