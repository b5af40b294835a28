"""Rule coco_train: train the seeds of one (split, augmentation, pairing, lr) cell; metrics.json written last."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.experiments.coco import train  # noqa: E402

sm = snakemake  # noqa: F821
train(hparams=dict(sm.params.hparams), model=dict(sm.params.model), train_cfg=dict(sm.params.train),
      image=dict(sm.params.image), split=sm.wildcards.split, aug=sm.wildcards.aug, pairing=sm.wildcards.pairing,
      lr=float(sm.wildcards.lr), seeds=list(sm.params.seeds), data=sm.input.data, labels=sm.input.labels,
      metrics=list(sm.output.metrics), logits=list(sm.output.logits), states=list(sm.params.state),
      device=sm.params.device, progress=False)
