"""Rule colored_mnist_train: train the seeds of one (sigma2, method) cell; metrics.json written last."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.experiments.colored_mnist import train  # noqa: E402

sm = snakemake  # noqa: F821
train(
    hparams=dict(sm.params.hparams),
    model=dict(sm.params.model),
    train_cfg=dict(sm.params.train),
    sigma2s=list(sm.params.sigma2),
    row=sm.wildcards.method,
    seeds=sm.params.seeds,
    data=list(sm.input.data),
    init_models=list(sm.input.init) if "init" in sm.input.keys() else None,
    metrics=list(sm.output.metrics) if isinstance(sm.output.metrics, list) else [sm.output.metrics],
    models=list(sm.output.model) if isinstance(sm.output.model, list) else [sm.output.model],
    states=sm.params.state,
    device=sm.params.device,
)
