"""Rule matrix_<dataset>: train the job's methods on one dataset for every seed; metrics.json (or its n/a record)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.experiments.matrix import train  # noqa: E402

sm = snakemake  # noqa: F821
inputs = {k: v for k, v in sm.input.items() if k != "weights"}
weights_file = sm.input.weights if "weights" in sm.input.keys() else None  # the pretrained file (pretrained_input)
as_list = lambda v: list(v) if isinstance(v, list) else [v]  # noqa: E731
train(dataset=sm.params.dataset, task_name=sm.params.task, methods_=list(sm.params.methods), seeds=list(sm.params.seeds), inputs=inputs,
      entry=dict(sm.params.entry), hparams=dict(sm.params.hparams), model=dict(sm.params.model),
      train_cfg=dict(sm.params.train), image=dict(sm.params.image) or None, metrics=as_list(sm.output.metrics),
      states=list(sm.params.state), device=sm.params.device, weights_file=weights_file)
