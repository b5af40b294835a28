"""Rules fairface_pool and l2rw_mnist_pool: decode a dataset once into the uint8 pool of its experiment."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.experiments import reweighting  # noqa: E402

sm = snakemake  # noqa: F821
if sm.rule == "fairface_pool":
    reweighting.prepare_fairface_pool(sm.params.fairface, sm.output.pool, threads=sm.threads)
else:
    reweighting.prepare_mnist_pool(sm.params.mnist, sm.output.pool)
