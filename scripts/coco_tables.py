"""Rule coco_tables: Tables 1-3 (CSV, Markdown, LaTeX, HTML), the leakage figure and the F1-matched curves' (PNG,
PDF)."""
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

import yaml  # noqa: E402

from debias.experiments.coco_figures import figure_f1_curves, figure_leakage  # noqa: E402
from debias.experiments.coco_tables import table_leakage, table_map, table_splits  # noqa: E402

sm = snakemake  # noqa: F821
o, p = sm.output, sm.params
paper = yaml.safe_load(Path(sm.input.paper).read_text())
table_splits(sm.input.recipe, paper["coco_splits"], dict(p.attacker), p.scale,
             SimpleNamespace(csv=o.splits_csv, md=o.splits_md, tex=o.splits_tex, html=o.splits_html))
table_map(list(sm.input.metrics), paper["coco_map"], list(p.augmentations), p.scale,
          SimpleNamespace(csv=o.map_csv, md=o.map_md, tex=o.map_tex, html=o.map_html))
dataset = dict(zip(p.splits, sm.input.dataset))
keys = [dict(zip(("split", "aug", "pairing", "seed"), k)) for k in p.model_keys]
curves = dict(zip(p.f1_curve_keys, sm.input.f1_curves, strict=True))
tidy = table_leakage(dataset, list(zip(keys, sm.input.model)), paper["coco_leakage"], list(p.splits),
                     list(p.augmentations), list(p.pairings), p.scale,
                     SimpleNamespace(csv=o.leakage_csv, md=o.leakage_md, tex=o.leakage_tex, html=o.leakage_html),
                     model_metrics=list(sm.input.model_metrics), f1_curves=curves)
figure_leakage(tidy, list(p.augmentations), p.scale, [o.png, o.pdf])
if curves:
    figure_f1_curves(curves, list(zip(keys, sm.input.model)), list(sm.input.model_metrics), list(p.splits), p.scale,
                     [o.f1_png, o.f1_pdf])
