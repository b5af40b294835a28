"""Rule coco_prepare: labels + γ-subsets (labels.pt), images decoded once (data.pt), recipe with sha256."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.experiments.coco_prepare import prepare  # noqa: E402

sm = snakemake  # noqa: F821
section = dict(sm.params.section)
if section["source"] == "embedded":
    section["source"] = "captions"  # the embedded dataset is COCO-format: read by the captions loader
prepare(section, sm.output.data, sm.output.labels, sm.output.recipe, threads=sm.threads)
