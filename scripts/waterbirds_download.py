"""Rule waterbirds_download: fetch the public Waterbirds archive of waterbirds.source (allow_download only)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.data.waterbirds import download  # noqa: E402

sm = snakemake  # noqa: F821
section = dict(sm.params.section)
if not sm.config["allow_download"]:
    raise SystemExit(f"Waterbirds missing ({sm.output[0]}; config key waterbirds.root) and allow_download is false")
dl = dict(section.get("download") or {})
download(section["root"], section["source"], dl.get("url"), dl.get("sha256"))
