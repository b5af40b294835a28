"""Rule coco_train: train the seeds of one (split, augmentation, pairing, lr) cell, or (cells_per_job: all) of
every cell in turn in this one process; each run's metrics.json is written last."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.experiments.coco_train import train  # noqa: E402

sm = snakemake  # noqa: F821
seeds = list(sm.params.seeds)
if "cells" in sm.params.keys():  # one job for every cell: per-cell lists, outputs cell by cell, seed by seed
    cells, states, hparams = list(sm.params.cells), list(sm.params.state), list(sm.params.hparams)
else:
    cells = [(sm.wildcards.split, sm.wildcards.aug, sm.wildcards.pairing, sm.wildcards.lr)]
    states, hparams = [list(sm.params.state)], [sm.params.hparams]
metrics, logits, n = list(sm.output.metrics), list(sm.output.logits), len(seeds)
weights_file = sm.input.weights if "weights" in sm.input.keys() else None  # the pretrained file (pretrained_input)
cache = {}  # the images and labels, loaded once for every cell of this job
for i, ((split, aug, pairing, lr), state, hp) in enumerate(zip(cells, states, hparams, strict=True)):
    train(hparams=dict(hp), model=dict(sm.params.model), train_cfg=dict(sm.params.train),
          image=dict(sm.params.image), split=split, aug=aug, pairing=pairing, lr=float(lr), seeds=seeds,
          data=sm.input.data, labels=sm.input.labels, metrics=metrics[i * n : (i + 1) * n],
          logits=logits[i * n : (i + 1) * n], states=list(state), device=sm.params.device, progress=False,
          cache=cache, weights_file=weights_file)
