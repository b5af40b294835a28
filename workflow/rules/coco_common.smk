# COCO gender leakage: paths, the training grid and input functions of the rules in coco.smk.
from debias.data import coco_download as _coco_dl

COCO = config.get("coco")
COCO_REPORT = "COCO gender leakage (000, mixed augmentation)"
COCO_RUNS = f"{RESULTS}/runs/coco"
COCO_STATE = f"{RESULTS}/state/coco"
COCO_PREPARED = f"{RESULTS}/prepared/coco"
COCO_LEAK = f"{RESULTS}/leakage/coco"


def coco_lr(lr):
    return f"{float(lr):.0e}"


def coco_outputs():
    if COCO is None:
        return []
    tables = expand(f"{RESULTS}/tables/coco_{{t}}.{{ext}}", t=["splits", "map", "leakage"], ext=["csv", "md", "tex"])
    return tables + expand(f"{RESULTS}/figures/coco_leakage.{{ext}}", ext=["png", "pdf"])


def coco_cells():
    """Every training cell (split, aug, pairing, lr): Table 2 (lr x aug on table2_split, random pairs) and Table 3
    (split x aug x pairing at table3_lr; the no-mix model has no partner: pairing 'none')."""
    if COCO is None:
        return []
    cells = set()
    for lr in COCO["lrs"]:
        for aug in COCO["augmentations"]:
            cells.add((COCO["table2_split"], aug, coco_pairing(aug, "random"), coco_lr(lr)))
    for split in COCO["splits"]:
        for aug in COCO["augmentations"]:
            for pairing in COCO["pairings"]:
                cells.add((split, aug, coco_pairing(aug, pairing), coco_lr(COCO["table3_lr"])))
    return sorted(cells)


def coco_pairing(aug, pairing):
    from debias.config import method_entry

    cls = method_entry(aug, COCO["hparams"][aug])[0]
    return "none" if cls == "nomix" else pairing


def coco_run(split, aug, pairing, lr, seed, name):
    return f"{COCO_RUNS}/split={split}/{aug}/pairing={pairing}/lr={lr}/seed={seed}/{name}"


def coco_table2_metrics():
    return [coco_run(COCO["table2_split"], aug, coco_pairing(aug, "random"), coco_lr(lr), s, "metrics.json")
            for lr in COCO["lrs"] for aug in COCO["augmentations"] for s in COCO["seeds"]]


def coco_table3_keys():
    """(split, aug, pairing, seed) of every model-leakage cell of Table 3."""
    keys = set()
    for split in COCO["splits"]:
        for aug in COCO["augmentations"]:
            for pairing in COCO["pairings"]:
                for s in COCO["seeds"]:
                    keys.add((split, aug, coco_pairing(aug, pairing), s))
    return sorted(keys)


def coco_model_leakage(split, aug, pairing, seed):
    return f"{COCO_LEAK}/model/split={split}/{aug}/pairing={pairing}/lr={coco_lr(COCO['table3_lr'])}/seed={seed}.json"


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


def coco_bench_files():
    """Snakemake's benchmark file of every COCO training job (gathered by rule job_costs)."""
    return [f"{BENCH_JOBS}/coco/split={c[0]}/{c[1]}/pairing={c[2]}/lr={c[3]}.tsv" for c in coco_cells()]
