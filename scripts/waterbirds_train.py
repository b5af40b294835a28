"""Rule waterbirds_train: train the seeds of one row (one ε percentile for fisher_flat); metrics.json last."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.experiments.waterbirds import train  # noqa: E402

sm = snakemake  # noqa: F821
as_list = lambda v: list(v) if isinstance(v, list) else [v]  # noqa: E731
weights_file = sm.input.weights if "weights" in sm.input.keys() else None  # the pretrained file (pretrained_input)
train(hparams=dict(sm.params.hparams), model=dict(sm.params.model), train_cfg=dict(sm.params.train),
      row=sm.wildcards.row, epsilon_percentile=sm.params.epsilon_percentile, seeds=list(sm.params.seeds),
      data=sm.input.data, metrics=as_list(sm.output.metrics), models=as_list(sm.output.model),
      states=list(sm.params.state), device=sm.params.device, weights_file=weights_file)
