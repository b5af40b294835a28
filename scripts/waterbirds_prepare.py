"""Rule waterbirds_prepare: decode every image once (square resize, centre crop) into data.pt + recipe.json."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.experiments.waterbirds import prepare  # noqa: E402

sm = snakemake  # noqa: F821
prepare(dict(sm.params.section), sm.output.data, sm.output.recipe, threads=sm.threads)
