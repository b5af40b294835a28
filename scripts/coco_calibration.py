"""Rule coco_calibration: the G2 table (test and val mAP per lr for each train_layers regime, beside Table 2's
no-mix column)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

import yaml  # noqa: E402

from debias.experiments.coco_tables import table_calibration  # noqa: E402

sm = snakemake  # noqa: F821
paper = yaml.safe_load(Path(sm.input.paper).read_text())["coco_map"]
table_calibration(list(zip(sm.params.train_layers, sm.input.metrics, strict=True)), paper, sm.params.augmentation,
                  sm.params.configured, sm.params.scale, sm.output.csv, sm.output.md)
