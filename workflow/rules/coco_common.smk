# COCO gender leakage: paths, the training grid and input functions of the rules in coco.smk (the run paths and
# the grid: debias.paths).
from debias import paths as _paths
from debias.data import coco_download as _coco_dl

COCO = config.get("coco")
COCO_REPORT = "COCO gender leakage (000, mixed augmentation)"
COCO_RUNS = f"{RESULTS}/runs/coco"
COCO_STATE = f"{RESULTS}/state/coco"
COCO_PREPARED = f"{RESULTS}/prepared/coco"
COCO_LEAK = f"{RESULTS}/leakage/coco"


def coco_lr(lr):
    return _paths.coco_lr(lr)


def coco_outputs():
    if COCO is None:
        return []
    tables = expand(f"{RESULTS}/tables/coco_{{t}}.{{ext}}", t=["splits", "map", "leakage"], ext=["csv", "md", "tex", "html"])
    figures = expand(f"{RESULTS}/figures/coco_leakage.{{ext}}", ext=["png", "pdf"])
    return tables + figures + [str(f) for f in coco_f1_figure_outputs().values()]


def coco_f1_figure_outputs():
    """The F1-matched leakage figure (rule coco_tables), when coco.f1_matched is set."""
    if not coco_f1_curves():
        return {}
    return {"f1_png": report(f"{RESULTS}/figures/coco_f1_leakage.png", caption="../report/coco_f1_figure.rst",
                             category=COCO_REPORT,
                             labels=report_label("Wang's F1-matched leakage: flipped ground truth vs the models")),
            "f1_pdf": f"{RESULTS}/figures/coco_f1_leakage.pdf"}


def coco_cells():
    """Every training cell (split, aug, pairing, lr): Table 2 (lr x aug on table2_split, random pairs) and Table 3
    (split x aug x pairing at table3_lr; the no-mix model has no partner: pairing 'none')."""
    return _paths.coco_cells(COCO)


def coco_pairing(aug, pairing):
    return _paths.coco_pairing(COCO, aug, pairing)


def coco_run(split, aug, pairing, lr, seed, name):
    return _paths.coco_run(RESULTS, split, aug, pairing, lr, seed, name)


def coco_table2_metrics():
    return [coco_run(COCO["table2_split"], aug, coco_pairing(aug, "random"), coco_lr(lr), s, "metrics.json")
            for lr in COCO["lrs"] for aug in COCO["augmentations"] for s in COCO["seeds"]]


def coco_table3_keys():
    """(split, aug, pairing, seed) of every model-leakage cell of Table 3."""
    return _paths.coco_table3_keys(COCO)


def coco_model_leakage(split, aug, pairing, seed):
    return coco_model_leakage_path(split, aug, pairing, coco_lr(COCO["table3_lr"]), seed)


def coco_label_inputs():
    """The raw label files the prepare step reads: the embedded dataset's JSONs, or the real files."""
    if COCO["source"] == "embedded":
        return [f"{COCO['root']}/annotations/{name}" for name in _coco_dl.ANNOTATION_FILES]
    return [str(p) for p in _coco_dl.label_files(COCO)]


def coco_sorted(obj):
    """``obj`` with every dict's keys sorted, so that params compare equal however the config file orders them
    (Snakemake's params trigger compares their text)."""
    if isinstance(obj, dict):
        return {k: coco_sorted(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [coco_sorted(v) for v in obj]
    return obj


# A training job trains one (split, aug, pairing, lr) cell, or (cells_per_job: all) every cell of coco_cells(),
# so that interpreter and torch start-up do not dominate short runs; likewise one leakage job per split / per
# model, or one job for all dataset leakages and one for all model leakages. COCO_ALL_CELLS picks; the paths of
# a job (wildcard templates, or every cell's) come from the functions below.
COCO_ALL_CELLS = COCO is not None and COCO["cells_per_job"] == "all"
COCO_CELL = ("{split}", "{aug}", "{pairing}", "{lr}")
COCO_TRAIN_NAME = "all_cells" if COCO_ALL_CELLS else "split={split}/{aug}/pairing={pairing}/lr={lr}"


def coco_job_cells():
    """The cells of one training job: every cell, or the wildcards' one."""
    return coco_cells() if COCO_ALL_CELLS else [COCO_CELL]


def coco_train_outputs(name):
    """``name`` (metrics.json, logits.pt) of every cell and seed one training job trains, cell by cell."""
    return [coco_run(*cell, s, name) for cell in coco_job_cells() for s in COCO["seeds"]]


def coco_train_cells(wc):
    """The cells one training job trains: the wildcards' one, or every cell."""
    return coco_cells() if COCO_ALL_CELLS else [(wc.split, wc.aug, wc.pairing, wc.lr)]


def coco_train_state(wc):
    """The resume-state files of a training job: one per seed, or (all) one list per cell."""
    state = [[_paths.coco_state(RESULTS, *c, s) for s in COCO["seeds"]] for c in coco_train_cells(wc)]
    return state if COCO_ALL_CELLS else state[0]


def coco_train_hparams(wc):
    """The augmentation's hparams of the job's cell (its row's only: other rows' edits rerun nothing there), or
    (all) one per cell."""
    hparams = [coco_sorted(COCO["hparams"][c[1]]) for c in coco_train_cells(wc)]
    return hparams if COCO_ALL_CELLS else hparams[0]


# params only the one-job form has (the per-cell form's params, and so its params trigger, stay as they were)
COCO_TRAIN_CELLS_PARAM = {"cells": [list(c) for c in coco_cells()]} if COCO_ALL_CELLS else {}


def coco_dataset_leakage_outputs():
    return [_paths.coco_dataset_leakage(RESULTS, s) for s in (COCO["splits"] if COCO_ALL_CELLS else ["{split}"])]


def coco_model_leakage_keys():
    """(split, aug, pairing, lr, seed) of the models one model-leakage job attacks: every Table 3 model, or the
    wildcards' one."""
    if COCO_ALL_CELLS:
        return [(sp, aug, pa, coco_lr(COCO["table3_lr"]), s) for sp, aug, pa, s in coco_table3_keys()]
    return [("{split}", "{aug}", "{pairing}", "{lr}", "{seed}")]


def coco_model_leakage_logits():
    """The logits a model-leakage job reads: every Table 3 model's (a list), or the wildcards' model's."""
    logits = [coco_run(*k, "logits.pt") for k in coco_model_leakage_keys()]
    return logits if COCO_ALL_CELLS else logits[0]


def coco_model_leakage_path(split, aug, pairing, lr, seed):
    return _paths.coco_model_leakage(RESULTS, split, aug, pairing, lr, seed)


def coco_bench_files():
    """Snakemake's benchmark file of every COCO training job (gathered by rule job_costs)."""
    if COCO_ALL_CELLS:
        return [f"{BENCH_JOBS}/coco/{COCO_TRAIN_NAME}.tsv"]
    return [f"{BENCH_JOBS}/coco/split={c[0]}/{c[1]}/pairing={c[2]}/lr={c[3]}.tsv" for c in coco_cells()]


def coco_f1_curves():
    """{file stem: (attacker mode, split)} of every F1-matched dataset-leakage curve (Wang's natural leakage,
    G12) of the attackers of coco.f1_matched.attackers: one for the balanced attacker (it draws from the full
    splits), one per split for the unbalanced one; none when the config has no coco.f1_matched."""
    from debias.experiments.coco_keys import f1_curve_key

    if COCO is None or not COCO.get("f1_matched"):
        return {}
    curves = {}
    for mode in COCO["f1_matched"]["attackers"]:
        for split in COCO["splits"]:
            curves.setdefault(f1_curve_key(mode, split), (mode, split if mode == "unbalanced" else None))
    return curves


def coco_f1_curve_path(stem):
    return f"{COCO_LEAK}/f1_curve/{stem}.json"


def coco_f1_curve_outputs():
    """The curves one job traces: every curve (cells_per_job: all), or the wildcard's one."""
    return [coco_f1_curve_path(c) for c in (coco_f1_curves() if COCO_ALL_CELLS else ["{curve}"])]


def coco_f1_curve_params(wc):
    """[stem, mode, split] of the job's curves, in output order."""
    curves = coco_f1_curves()
    stems = list(curves) if COCO_ALL_CELLS else [wc.curve]
    return [[stem, *curves[stem]] for stem in stems]


def coco_table3_metrics():
    """metrics.json (val macro-F1) of every Table 3 model, in coco_table3_keys() order."""
    return [coco_run(sp, aug, pa, coco_lr(COCO["table3_lr"]), s, "metrics.json")
            for sp, aug, pa, s in coco_table3_keys()]


# G2 calibration (`snakemake coco_calibration`, not part of `all`): the no-mix classifier on Table 2's split at
# every lr, once per `coco.calibration.train_layers` regime. The regime the config trains already has these runs
# (Table 2's no-mix column): they are reused, so only the other regimes train.
COCO_CAL = f"{RESULTS}/runs/coco_calibration"


def coco_calibration_run(train_layers, lr, seed, name):
    cal = COCO["calibration"]
    aug = cal["augmentation"]
    if train_layers == COCO["hparams"][aug]["train_layers"]:
        return coco_run(COCO["table2_split"], aug, coco_pairing(aug, "random"), lr, seed, name)
    return (f"{COCO_CAL}/train_layers={train_layers}/split={COCO['table2_split']}/{aug}/"
            f"pairing={coco_pairing(aug, 'random')}/lr={lr}/seed={seed}/{name}")


def coco_calibration_metrics():
    """(train_layers, metrics.json) of every calibration run, regime by regime, lr by lr, seed by seed."""
    cal = COCO.get("calibration") if COCO else None
    if not cal:
        return []
    return [(tl, coco_calibration_run(tl, coco_lr(lr), s, "metrics.json"))
            for tl in cal["train_layers"] for lr in COCO["lrs"] for s in COCO["seeds"]]
