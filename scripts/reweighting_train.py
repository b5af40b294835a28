"""Rule reweighting_train: train every seed of one (experiment, share, method) cell; metrics.json last."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.experiments.reweighting import train  # noqa: E402

sm = snakemake  # noqa: F821
train(experiment=sm.params.exp, shares=list(sm.params.shares), row=sm.wildcards.method,
      hparams=dict(sm.params.hparams), train_cfg=dict(sm.params.train), model=dict(sm.params.model),
      seeds=list(sm.params.seeds), pool_file=sm.input.pool, split_files=list(sm.input.splits),
      metrics=list(sm.output.metrics), models=list(sm.output.model), states=list(sm.params.state),
      device=sm.params.device)
