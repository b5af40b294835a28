"""Rules coco_dataset_leakage / coco_model_leakage: the attacker on ground-truth objects or on a model's logits."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias.experiments.coco import leakage_job  # noqa: E402

sm = snakemake  # noqa: F821
attacker = dict(sm.params.attacker)
leakage_job(labels=sm.input.labels, split=sm.wildcards.split, attacker=attacker, modes=list(attacker["attackers"]),
            out=sm.output[0], logits=sm.input.logits if "logits" in sm.input.keys() else None)
