"""COCO gender leakage (paper 000), stage tables: Tables 1-3 (rule coco_tables: images per split and gender, object
mAP, gender leakage and, where there are curves, Wang's F1-matched bias amplification), each a tidy CSV and, through
``debias.tables.write_tables``, Markdown, LaTeX and HTML; and the G2 calibration table (rule coco_calibration: a tidy
CSV and Markdown). The figures of rule coco_tables: ``coco_figures``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from debias.experiments.coco_keys import AUG_NAMES, SPLIT_NAMES, f1_curve_key
from debias.io import read_json, write_text
from debias.leakage import f1_matched
from debias.tables import cells_caption, fmt_plain_cell, summarize, write_tables


def table_splits(recipe_file: str, paper: dict, attacker: dict, scale: str, out) -> pd.DataFrame:
    counts = read_json(recipe_file)["counts"]
    rows = [("no balance (train)", counts["train"]), ("γ = 1 (train)", counts["train_gamma1"]),
            ("γ = 2 (train)", counts["train_gamma2"]), ("γ = 3 (train)", counts["train_gamma3"]),
            ("val", counts["val"]), ("test", counts["test"])]
    n_tr, n_ev = attacker["n_train_per_group"], attacker["n_eval_per_group"]
    bal = {"man": f"{n_tr} / {n_ev} / {n_ev}", "woman": f"{n_tr} / {n_ev} / {n_ev}"}
    records = []
    for name, c in rows:
        for gender in ("man", "woman"):
            p = paper["values"].get(name, {}).get(gender, math.nan)
            records.append({"attacker_balanced": False, "split": name, "gender": gender, "images": c[gender],
                            "paper": p, "delta": c[gender] - p, "scale": scale})
    tidy = pd.DataFrame(records)
    write_text(out.csv, tidy.to_csv(index=False, float_format="%.6g"))
    wide = pd.DataFrame(
        {g: [fmt_plain_cell(c[g], paper=paper["values"].get(n, {}).get(g, math.nan), digits=0) for n, c in rows]
         + [bal[g]] for g in ("man", "woman")},
        index=pd.Index([n for n, _ in rows] + ["balanced attacker: train / val / test (per round)"], name="split"))
    caption = (f"COCO gender subset, images per split and gender [paper value, difference] ({scale} scale). "
               f"Paper: {paper['table']}.")
    write_tables(wide, caption, "tab:coco_splits", out.md, out.tex, out.html, [paper.get("notes", "").strip()])
    return tidy


def collect_map(metric_files: list[str]) -> pd.DataFrame:
    rows = []
    for path in metric_files:
        rec = read_json(path)
        rows.append({"augmentation": rec["method"], "lr": rec["variant"]["lr"], "split": rec["variant"]["split"],
                     "pairing": rec["variant"]["pairing"], "seed": rec["seed"],
                     "test_map": 100 * rec["metrics"]["test"]["mAP"], "val_map": 100 * rec["metrics"]["val"]["mAP"],
                     "selected_epoch": rec["selected"]["epoch"], "images_per_s": rec["images_per_s"],
                     "device": rec["device_name"]})
    return pd.DataFrame(rows)


def table_map(metric_files: list[str], paper: dict, augs: list[str], scale: str, out):
    runs = collect_map(metric_files)
    summary = summarize(runs, ["augmentation", "lr"], "test_map", "map")
    summary["paper"] = [paper["values"].get(a, {}).get(_lr_key(lr), math.nan)
                        for a, lr in zip(summary["augmentation"], summary["lr"])]
    summary["delta"] = summary["map_mean"] - summary["paper"]
    summary["scale"] = scale
    write_text(out.csv, summary.to_csv(index=False, float_format="%.6g"))
    cells = summary.assign(cell=[fmt_plain_cell(m, s, p, 3) for m, s, p in
                                 zip(summary["map_mean"], summary["map_std"], summary["paper"])])
    wide = cells.pivot(index="lr", columns="augmentation", values="cell")
    wide = wide[[a for a in augs if a in wide.columns]].fillna("–")
    wide.index = [f"{lr:.0e}" for lr in wide.index]
    wide.index.name = "lr"
    wide.columns = [AUG_NAMES.get(a, a) for a in wide.columns]
    lrs = sorted({float(lr) for v in paper["values"].values() for lr in v})
    absent = ("" if summary["paper"].notna().any() else
              f" No paper value at this run's learning rates (the paper's: {', '.join(f'{lr:.0e}' for lr in lrs)}).")
    caption = (f"COCO gender subset, object mAP (%) on the original test split, "
               f"{cells_caption(summary['n_seeds'], summary['paper'])} ({scale} scale). Paper: {paper['table']}."
               + absent)
    write_tables(wide, caption, "tab:coco_map", out.md, out.tex, out.html, [paper.get("notes", "").strip()])
    return summary


def table_calibration(runs: list[tuple[str, str]], paper: dict, aug: str, configured: str, scale: str,
                      out_csv: str, out_md: str):
    """G2: which regime (``train_layers``: head = frozen backbone, all = whole network) reproduces Table 2's
    no-mix column. ``runs``: (regime, metrics.json). Per regime and lr: test and val mAP (mean over seeds), the
    paper's value and the difference; the regime with the smaller mean |test − paper| over the lrs is named."""
    rows = []
    for regime, path in runs:
        rec = read_json(path)
        trained = rec["hparams"]["train_layers"]
        if trained != regime:
            raise ValueError(f"{path}: trained with train_layers {trained!r}; expected {regime!r}")
        rows.append({"train_layers": regime, "lr": rec["variant"]["lr"], "seed": rec["seed"],
                     "test_map": 100 * rec["metrics"]["test"]["mAP"], "val_map": 100 * rec["metrics"]["val"]["mAP"],
                     "selected_epoch": rec["selected"]["epoch"], "images_per_s": rec["images_per_s"],
                     "wall_time_s": rec["wall_time_s"], "device": rec["device_name"]})
    d = pd.DataFrame(rows).groupby(["train_layers", "lr"], sort=False).agg(
        test_map=("test_map", "mean"), val_map=("val_map", "mean"), n_seeds=("seed", "size"),
        selected_epoch=("selected_epoch", "mean"), images_per_s=("images_per_s", "mean"),
        wall_time_s=("wall_time_s", "mean"), device=("device", "first")).reset_index()
    d["paper"] = [paper["values"].get(aug, {}).get(_lr_key(lr), math.nan) for lr in d["lr"]]
    d["delta"] = d["test_map"] - d["paper"]
    d["scale"] = scale
    write_text(out_csv, d.to_csv(index=False, float_format="%.6g"))
    gap = d.assign(a=d["delta"].abs()).groupby("train_layers", sort=False)["a"].mean()
    wide = pd.DataFrame({f"{tl}{' (configured)' if tl == configured else ''}":
                         [fmt_plain_cell(r.test_map, paper=r.paper, detail=f" (val {r.val_map:.2f})")
                          for r in d[d["train_layers"] == tl].itertuples()]
                         for tl in gap.index}, index=pd.Index([f"{lr:.0e}" for lr in d["lr"].unique()], name="lr"))
    closest = "" if gap.isna().all() else (
        f"Closest to the paper: **{gap.idxmin()}** (mean |test − paper| {gap.min():.2f} points; "
        + ", ".join(f"{tl} {v:.2f}" for tl, v in gap.items()) + "). ")
    caption = (f"G2 calibration ({scale} scale): {AUG_NAMES.get(aug, aug)} test mAP (%) on the original test split, "
               f"mean over seeds (val mAP) [paper's Table 2, difference], per train_layers regime: head = backbone "
               f"frozen (BN in train mode), all = whole network.")
    # the rule makes the Markdown only (no LaTeX, no HTML); the note's leading newline keeps the page's two blank
    # lines above it, as the file has always had
    write_tables(wide, caption, "tab:coco_g2_calibration", out_md, None, None,
                 [f"\n{closest}Set coco.hparams.*.train_layers to the regime to use (docs/coco.md, G2)."])
    return d


def _lr_key(lr: float) -> str:
    return f"{lr:.0e}"


def collect_leakage(dataset_files: dict[str, str], model_files: list[tuple[dict, str]],
                    model_metrics: list[str] | None = None):
    """Tidy rows: (attacker, pairing, split, what, scores...) from the leakage JSONs; with ``model_metrics`` (one
    metrics.json per model file, same order) the model's val macro-F1 too."""
    rows = []
    for split, path in dataset_files.items():
        rec = read_json(path)
        for mode, r in rec["results"].items():
            rows.append({"attacker": mode, "split": split, "what": "dataset", "pairing": "any",
                         "mean": 100 * r["mean"], "std": 100 * r["std"], "n_rounds": len(r["scores"]),
                         "majority": 100 * r["test_majority_rate"]})
    if model_metrics is not None and len(model_metrics) != len(model_files):
        raise ValueError(f"{len(model_metrics)} metrics files for {len(model_files)} model leakages; expected one each")
    for i, (key, path) in enumerate(model_files):
        rec = read_json(path)
        f1 = math.nan if model_metrics is None else read_json(model_metrics[i])["metrics"]["val"]["macro_f1"]
        for mode, r in rec["results"].items():
            rows.append({"attacker": mode, "split": key["split"], "what": key["aug"], "pairing": key["pairing"],
                         "seed": key["seed"], "scores": [100 * s for s in r["scores"]], "val_f1": f1,
                         "n_rounds": len(r["scores"]), "majority": 100 * r["test_majority_rate"]})
    return pd.DataFrame(rows)


def read_f1_curve(path: str) -> dict:
    """(val macro-F1, leakage %) of a curve file's flip rates (means over rounds), and its F1 range."""
    rec = read_json(path)
    f1 = [pt["f1_mean"] for pt in rec["points"]]
    return {"f1": f1, "leakage": [100 * pt["leakage_mean"] for pt in rec["points"]], "range": (min(f1), max(f1))}


def _f1_matched_delta(sel, curve: dict | None) -> tuple[float, float, float]:
    """Mean over a cell's models (seeds) of val F1, ℓ_D at that F1, and model leakage − ℓ_D(F1); NaN where a
    model's F1 is outside the curve's range."""
    if curve is None or sel.empty:
        return math.nan, math.nan, math.nan
    f1s, at, deltas = [], [], []
    for _, m in sel.iterrows():
        d = f1_matched(curve["f1"], curve["leakage"], m["val_f1"])
        f1s.append(m["val_f1"])
        at.append(d)
        deltas.append(float(np.mean(m["scores"])) - d)
    return float(np.mean(f1s)), float(np.mean(at)), float(np.mean(deltas))


def table_leakage(dataset_files: dict[str, str], model_files: list[tuple[dict, str]], paper: dict,
                  splits: list[str], augs: list[str], pairings: list[str], scale: str, out,
                  model_metrics: list[str] | None = None, f1_curves: dict[str, str] | None = None) -> pd.DataFrame:
    """Table 3. With ``f1_curves`` (curve file per ``f1_curve_key``) and ``model_metrics``, Wang's F1-matched
    bias amplification too: each model's leakage minus the dataset leakage at the model's val macro-F1."""
    raw = collect_leakage(dataset_files, model_files, model_metrics)
    curves = {k: read_f1_curve(v) for k, v in (f1_curves or {}).items()}
    ds = raw[raw["what"] == "dataset"].set_index(["attacker", "split"])
    models = raw[raw["what"] != "dataset"]
    order = [s for s in ("none", "gamma3", "gamma2", "gamma1") if s in splits]
    records = []
    for attacker in ("unbalanced", "balanced"):
        for pairing in pairings:
            for split in order:
                row = {"attacker_balanced": attacker == "balanced", "augment_balanced": pairing == "balanced",
                       "split": split, "attacker": attacker, "pairing": pairing}
                d = ds.loc[(attacker, split)]
                row.update(dataset_mean=d["mean"], dataset_std=d["std"], majority=d["majority"])
                deltas, f1_deltas = [], []
                curve = curves.get(f1_curve_key(attacker, split))
                for aug in augs:
                    pair = "none" if aug == "nomix" else pairing
                    sel = models[(models["attacker"] == attacker) & (models["split"] == split)
                                 & (models["what"] == aug) & (models["pairing"] == pair)]
                    scores = [s for lst in sel["scores"] for s in lst]
                    mean = float(np.mean(scores)) if scores else math.nan
                    std = float(np.std(scores, ddof=1)) if len(scores) > 1 else math.nan
                    row[f"{aug}_mean"], row[f"{aug}_std"], row[f"{aug}_n"] = mean, std, len(scores)
                    row[f"{aug}_delta"] = mean - d["mean"]
                    deltas.append(mean - d["mean"])
                    if f1_curves:
                        row[f"{aug}_val_f1"], row[f"{aug}_dataset_at_f1"], row[f"{aug}_delta_f1"] = (
                            _f1_matched_delta(sel, curve))
                        f1_deltas.append(row[f"{aug}_delta_f1"])
                row["min_delta"] = float(np.nanmin(deltas)) if deltas else math.nan
                if f1_curves:
                    ok = [v for v in f1_deltas if not math.isnan(v)]
                    row["min_delta_f1"] = min(ok) if ok else math.nan
                    row["f1_curve_min"], row["f1_curve_max"] = curve["range"] if curve else (math.nan, math.nan)
                key = f"{attacker}/{pairing}/{split}"
                pv = paper["values"].get(key, {})
                for col in ["dataset"] + augs + ["min_delta"]:
                    row[f"{col}_paper"] = pv.get(col, math.nan)
                row["min_delta_printed"] = pv.get("min_delta_printed", math.nan)
                row["scale"] = scale
                records.append(row)
    tidy = pd.DataFrame(records)
    write_text(out.csv, tidy.to_csv(index=False, float_format="%.6g"))
    wides = {}
    for latex in (False, True):
        cells = []
        for _, r in tidy.iterrows():
            cell = {"attacker bal.": str(r["attacker_balanced"]), "augment bal.": str(r["augment_balanced"]),
                    "split": SPLIT_NAMES[r["split"]],
                    "dataset leakage": fmt_plain_cell(r["dataset_mean"], r["dataset_std"], r["dataset_paper"],
                                                      latex=latex)}
            for aug in augs:
                cell[AUG_NAMES.get(aug, aug)] = fmt_plain_cell(r[f"{aug}_mean"], r[f"{aug}_std"], r[f"{aug}_paper"],
                                                               latex=latex)
            flag = "†" if not math.isnan(r["min_delta_printed"]) else ""
            if latex and flag:
                flag = r"$^\dagger$"
            cell["min. bias ampl."] = fmt_plain_cell(r["min_delta"], paper=r["min_delta_paper"], flag=flag,
                                                     latex=latex)
            if f1_curves:
                cell["min. F1-matched ampl."] = ("–" if math.isnan(r["f1_curve_min"]) else "n/a"
                                                 if math.isnan(r["min_delta_f1"])
                                                 else fmt_plain_cell(r["min_delta_f1"]))
            cell["majority"] = fmt_plain_cell(r["majority"]) if r["attacker"] == "unbalanced" else "50 (folded)"
            cells.append(cell)
        wides[latex] = pd.DataFrame(cells).set_index("attacker bal.")
    scores = tidy[[f"{a}_n" for a in augs]].to_numpy().ravel()
    refs = tidy[[f"{c}_paper" for c in ["dataset", *augs]]].to_numpy().ravel()
    caption = (f"COCO gender leakage (%), "
               f"{cells_caption(scores, refs, units=('attacker score', 'attacker scores (rounds × seeds)'))}; "
               f"min. bias ampl. = min over augmentations of model − dataset leakage ({scale} scale). "
               f"Paper: {paper['table']}.")
    notes = [paper.get("notes", "").strip(),
             "† the paper prints a value that its own columns contradict; the bracket holds the value recomputed "
             "from the printed columns (see config/paper_values.yaml).",
             "majority: share of the majority gender in test (an always-'man' attacker scores it; so does any "
             "attacker of a model that predicts the same for every image)."]
    if f1_curves:
        notes.append(_f1_note(tidy, augs, curves))
    write_tables(wides[False], caption, "tab:coco_leakage", out.md, out.tex, out.html, notes,
                 latex_wide=wides[True], latex_notes=notes[1:])
    return tidy


def _f1_note(tidy, augs: list[str], curves: dict[str, dict]) -> str:
    with_curve = tidy[tidy["f1_curve_min"].notna()]
    f1 = with_curve[[f"{a}_val_f1" for a in augs]].to_numpy(dtype=float)
    lo = min(c["range"][0] for c in curves.values())
    hi = max(c["range"][1] for c in curves.values())
    n_na = int(with_curve[[f"{a}_delta_f1" for a in augs]].isna().to_numpy().sum())
    modes = sorted(set(with_curve["attacker"]))
    return (f"min. F1-matched ampl. (Wang et al.): min over augmentations of model leakage − dataset leakage of "
            f"ground truth flipped to the model's val macro-F1 (linear between the flip rates' points; the curves "
            f"are in leakage/coco/f1_curve/ of the results directory). The flipped labels' F1 spans {lo:.3f}–"
            f"{hi:.3f}, the models' val F1 {np.nanmin(f1):.3f}–{np.nanmax(f1):.3f}; a model outside its curve's "
            f"range has no value (no extrapolation: {n_na} of {f1.size} cells), n/a where no cell of the row has "
            f"one; – where the attacker has no curve (coco.f1_matched.attackers: {', '.join(modes)}).")
