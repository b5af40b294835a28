"""Rules coco_dataset_leakage / coco_model_leakage: the attacker on ground-truth objects or on a model's logits,
for one split / model, or (cells_per_job: all) for every split / every Table 3 model in this one process."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.experiments.coco_leakage import leakage_job  # noqa: E402

sm = snakemake  # noqa: F821
attacker = dict(sm.params.attacker)
model = "logits" in sm.input.keys()
if "splits" in sm.params.keys():  # every dataset leakage, in output order
    jobs = [(split, None) for split in sm.params.splits]
elif "models" in sm.params.keys():  # every model leakage: (split, aug, pairing, lr, seed), in output order
    jobs = [(key[0], logits) for key, logits in zip(sm.params.models, sm.input.logits, strict=True)]
else:
    jobs = [(sm.wildcards.split, sm.input.logits if model else None)]
for (split, logits), out in zip(jobs, list(sm.output), strict=True):
    leakage_job(labels=sm.input.labels, split=split, attacker=attacker, modes=list(attacker["attackers"]),
                out=out, logits=logits)
