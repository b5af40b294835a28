"""COCO gender leakage (paper 000, Tables 1-3): prepare, train, logits, leakage (called by the rules' scripts).

- prepare: labels of both sources (``debias.data.coco``) and the images decoded once (short side, centre crop)
  into ``data.pt`` (uint8); ``labels.pt`` holds objects, genders and γ-subsets (no images), so the leakage
  and table jobs never load the images; ``recipe.json`` the sha256 of both, the recipe and the counts (Table 1).
- train: one job per (split, augmentation, pairing, lr) cell and its seeds. Images stay whole on the device;
  each step indexes a batch, makes the training view on the device (``image_pipeline``), and calls the
  method's ``update`` (mixing happens inside the method). After every epoch, macro-F1 on val (threshold 0.5)
  picks the checkpoint (G4); the chosen model gives mAP on the original test split and the logits for the
  leakage jobs: the original train split through the training view (random crop + flip, unmixed), val and test
  through the centre crop. Resumable state at epoch ends (model, optimiser, RNG, best checkpoint, history).
- leakage: the attacker on ground-truth objects (dataset leakage) or on a model's logits (model leakage);
  and Wang's F1-matched dataset leakage: the attacker on ground truth flipped at a list of rates, a curve of
  leakage against the flipped labels' val macro-F1, read off at each model's val macro-F1 (protocol G12).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from debias.data import coco
from debias.data.image_pipeline import Pipeline
from debias.devices import resolve_device
from debias.experiments.coco_keys import f1_curve_key
from debias.engine import RunSpec, fit, peak_memory_mb, reset_peak_memory
from debias.io import read_json, sha256_file, torch_save, write_json
from debias.leakage import AttackerConfig, f1_matched, flip_bits, leakage
from debias.metrics import macro_f1, mean_average_precision
from debias.provenance import environment
from debias.runner import fingerprint

log = logging.getLogger(__name__)
SPLIT_NAMES = {"none": "no balance", "gamma1": "γ = 1", "gamma2": "γ = 2", "gamma3": "γ = 3"}


def gamma_of(split: str) -> int | None:
    return None if split == "none" else int(split.removeprefix("gamma"))


# -- prepare --------------------------------------------------------------------------------------------------


def read_records(section: dict[str, Any]) -> coco.Records:
    if section["source"] == "wang":
        return coco.read_wang_source(section["wang_dir"])
    return coco.read_captions_source(section["root"], section["split_seed"], coco.GAMMAS, section["gamma_seed"])


def prepare(section: dict[str, Any], data_out: str, labels_out: str, recipe_out: str, threads: int = 4) -> dict:
    rec = read_records(section)
    img = section["image"]
    images = {s: coco.decode_split(sp, section["root"], img["short_side"], img["stored"], threads,
                                   where=f"{s} split, ") for s, sp in rec.splits.items()}
    labels = {
        "columns": rec.columns,
        "splits": {s: {"objects": torch.from_numpy(sp.objects), "gender": torch.from_numpy(sp.gender),
                       "image_id": torch.from_numpy(sp.image_id)} for s, sp in rec.splits.items()},
        "subsets": {s: {int(g): torch.tensor(ids, dtype=torch.long) for g, ids in sub.items()}
                    for s, sub in rec.subsets.items()},
    }
    torch_save({s: torch.from_numpy(x) for s, x in images.items()}, data_out)
    torch_save(labels, labels_out)
    counts = {s: sp.counts() for s, sp in rec.splits.items()}
    for s, sub in rec.subsets.items():
        for g, ids in sub.items():
            counts[f"{s}_gamma{g}"] = coco.take(rec.splits[s], np.asarray(ids, dtype=np.int64)).counts()
    recipe = {"source": section["source"], "image": img, "columns": rec.columns,
              "category_ids": rec.category_ids, "counts": counts,
              "files": {"root": section["root"], "wang_dir": section.get("wang_dir")},
              "data_sha256": sha256_file(data_out), "labels_sha256": sha256_file(labels_out)}
    if section["source"] != "wang":
        recipe.update(split_seed=section["split_seed"], gamma_seed=section["gamma_seed"],
                      man_words=sorted(coco.MAN_WORDS), woman_words=sorted(coco.WOMAN_WORDS))
    write_json(recipe_out, recipe)
    log.info("prepared %s: %s", data_out, counts)
    return recipe


# -- train ----------------------------------------------------------------------------------------------------


def make_backbone(model: dict[str, Any], num_outputs: int, weights_file: str | None = None):
    """ResNet-50 (from the weights file ``weights_file`` that ``model.weights`` names, or random) or the mini small
    ResNet."""
    from debias.data.pretrained import job_file
    from debias.models import resnet50_backbone, small_resnet_backbone

    if model["arch"] == "resnet50":
        return resnet50_backbone(num_outputs, job_file(model, weights_file, "coco.model.weights"))
    if model["arch"] == "small_resnet":
        return small_resnet_backbone(num_outputs, model["widths"])
    raise ValueError(f"config key coco.model.arch: {model['arch']!r}; expected resnet50 or small_resnet")


@torch.no_grad()
def split_logits(method, x: torch.Tensor, pipe: Pipeline, batch_size: int, train_view: bool = False,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    method.train(False)
    out = []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size]
        xb = pipe.train_view(xb, generator) if train_view else pipe.eval_view(xb)
        out.append(method.predict(xb).float().cpu())
    method.train(True)
    return torch.cat(out)


def train(*, hparams: dict, model: dict, train_cfg: dict, image: dict, split: str, aug: str, pairing: str,
          lr: float, seeds: list[int], data: str, labels: str, metrics: list[str], logits: list[str],
          states: list[str], device: str, progress: bool = True, cache: dict | None = None,
          weights_file: str | None = None) -> None:
    """Train ``seeds`` of one cell. ``cache``: a dict shared by the cells of one job, so that the images, the
    labels and their sha256 are read once per job rather than once per cell. ``weights_file``: the pretrained file
    ``model.weights`` names (debias.data.pretrained), None for a model trained from scratch."""
    from debias.config import COCO_GRID_KEYS, row_method
    from debias.determinism import configure as configure_determinism

    dev = resolve_device(device)
    configure_determinism(train_cfg.get("deterministic", True))  # as every other experiment's runs (runner.py)
    x, y, g, lab, labels_sha, data_sha = _load_splits(data, labels, dev, {} if cache is None else cache)
    gamma = gamma_of(split)
    train_idx = (torch.arange(lab["splits"]["train"]["gender"].numel()) if gamma is None
                 else lab["subsets"]["train"][gamma]).to(dev)
    pipe = Pipeline(crop=image["crop"], channels_last=train_cfg["channels_last"])
    cls, hp = row_method("coco", aug, hparams, supplied=COCO_GRID_KEYS)
    cls_name = cls.name
    hp = {**hp, "lr": lr, "pairing": pairing if pairing != "none" else "random",
          "autocast": train_cfg.get("autocast", True)}
    for seed, metrics_out, logits_out, state_path in zip(seeds, metrics, logits, states):
        run_id = f"coco/split={split}/{aug}/pairing={pairing}/lr={lr:.0e}/seed={seed}"
        t_start, started_unix = time.monotonic(), time.time()
        reset_peak_memory(dev)  # each run's own peak, not the job's so far (a job may train several cells)
        torch.manual_seed(seed)
        method = cls(make_backbone(model, len(lab["columns"]), weights_file), hp).to(dev)
        if train_cfg["channels_last"]:
            method.modules.to(memory_format=torch.channels_last)
        fp = fingerprint(cls_name, hp, train_cfg, model, image, labels_sha, data_sha, split, seed, dev.type)
        spec = RunSpec(run_id=run_id, seed=seed, epochs=hp["epochs"], batch_size=train_cfg["batch_size"],
                       state_path=Path(state_path), eval_every=1, eval_splits=("val",), final_splits=(),
                       checkpoint_every_s=train_cfg["checkpoint_every_s"], fingerprint=fp, progress=progress,
                       select=("val_macro_f1",), min_batch=2, train_view=pipe.train_view,
                       evaluate=lambda m, sp: {"macro_f1": macro_f1(
                           split_logits(m, sp["x"], pipe, train_cfg["eval_batch_size"]).numpy() > 0,
                           sp["y"].cpu().numpy())})
        # the training split: the (γ-)subset's rows of the train images, which stay whole on the device once
        splits = {"train": {"x": x["train"], "x_rows": train_idx, "y": y["train"][train_idx],
                            "group": g["train"][train_idx]},
                  "val": {"x": x["val"], "y": y["val"], "group": g["val"]}}
        run = fit(method, splits, spec)  # the method is left holding the selected epoch's weights
        out = {"history": run["history"], "selected": run["selected"], "train_time_s": run["train_time_s"],
               "resumed_from_epoch": run["resumed_from_epoch"], "images_per_s": run["examples_per_s"]}
        val_logits = split_logits(method, x["val"], pipe, train_cfg["eval_batch_size"])
        test_logits = split_logits(method, x["test"], pipe, train_cfg["eval_batch_size"])
        gen = torch.Generator(device=dev).manual_seed(seed + 12345)
        train_logits = split_logits(method, x["train"], pipe, train_cfg["eval_batch_size"], True, gen)
        res = {}
        for s, z in (("val", val_logits), ("test", test_logits)):
            truth = y[s].cpu().numpy()
            m, used = mean_average_precision(z.numpy(), truth)
            res[s] = {"mAP": m, "classes_in_mAP": used, "macro_f1": macro_f1(z.numpy() > 0, truth),
                      "n": int(truth.shape[0])}
        torch_save({"train": train_logits, "val": val_logits, "test": test_logits,
                    "train_view": "random crop + flip (unmixed)", "eval_view": "centre crop"}, logits_out)
        write_json(metrics_out, {
            "experiment": "coco", "variant": {"split": split, "pairing": pairing, "lr": lr}, "method": aug,
            "method_class": cls_name, "hparams": hp, "train": train_cfg, "model": model, "image": image,
            "seed": seed, "labels_sha256": labels_sha, "data_sha256": data_sha,
            "n_train": int(train_idx.numel()), "metrics": res, **out,
            "wall_time_s": time.monotonic() - t_start, "started_unix": started_unix, "finished_unix": time.time(),
            "peak_memory_mb": peak_memory_mb(dev), **environment(dev),
        })
        Path(state_path).unlink(missing_ok=True)
        log.info("%s: test mAP %.4f (epoch %d of %d by val macro-F1)", run_id, res["test"]["mAP"],
                 out["selected"]["epoch"], hp["epochs"])


def _load_splits(data: str, labels: str, dev: torch.device, cache: dict):
    """(images, objects, genders per split on ``dev``, the labels file, both sha256), read once per ``cache``."""
    key = (str(data), str(labels), str(dev))
    if key not in cache:
        # memory-mapped: the full-scale file (6.6 GB of uint8 images) goes to the device split by split instead of
        # being read whole into host memory first (a Slurm job's mem_mb would not hold it)
        images = torch.load(data, map_location="cpu", weights_only=True, mmap=True)
        lab = torch.load(labels, map_location="cpu", weights_only=True)
        cache.clear()
        cache[key] = ({s: images[s].to(dev) for s in coco.SPLITS},
                      {s: lab["splits"][s]["objects"].float().to(dev) for s in coco.SPLITS},
                      {s: lab["splits"][s]["gender"].to(dev) for s in coco.SPLITS},
                      lab, sha256_file(labels), sha256_file(data))
    return cache[key]


# -- leakage --------------------------------------------------------------------------------------------------


def attacker_config(attacker: dict) -> AttackerConfig:
    return AttackerConfig(epochs=attacker["epochs"], lr=attacker["lr"], weight_decay=attacker["weight_decay"],
                          batch_size=attacker["batch_size"], hidden=attacker["hidden"])


def attacker_inputs(labels: str, split: str | None) -> tuple[dict, dict, np.ndarray | None]:
    """Ground-truth objects (float) and genders per split from ``labels``, and the indices of ``split``'s training
    (γ-)subset (None: the whole train split; the balanced attacker ignores it and draws from the full splits)."""
    lab = torch.load(labels, map_location="cpu", weights_only=True)
    gender = {s: lab["splits"][s]["gender"].numpy() for s in coco.SPLITS}
    objects = {s: lab["splits"][s]["objects"].numpy().astype(np.float32) for s in coco.SPLITS}
    gamma = None if split is None else gamma_of(split)
    return objects, gender, None if gamma is None else lab["subsets"]["train"][gamma].numpy()


def leakage_job(*, labels: str, split: str, attacker: dict, modes: list[str], out: str, logits: str | None = None,
                seed: int = 0) -> dict:
    objects, gender, subset = attacker_inputs(labels, split)
    if logits is None:
        features, source = objects, "ground-truth objects"
    else:
        z = torch.load(logits, map_location="cpu", weights_only=True)
        features = {s: z[s].numpy() for s in coco.SPLITS}
        source = f"model logits ({logits})"
    cfg = attacker_config(attacker)
    t0 = time.monotonic()
    res = {mode: leakage(features, gender, subset, mode, attacker["rounds"], cfg, seed,
                         attacker["n_train_per_group"], attacker["n_eval_per_group"]) for mode in modes}
    record = {"split": split, "features": source, "attacker": attacker, "results": res,
              "labels_sha256": sha256_file(labels), "time_s": time.monotonic() - t0}
    write_json(out, record)
    return record


def f1_curve_job(*, labels: str, mode: str, split: str | None, attacker: dict, rates: list[float], out: str,
                 seed: int = 0, workers: int = 1) -> dict:
    """Wang's F1-matched dataset leakage (natural_leakage.py): for each flip rate p, ``attacker['rounds']``
    rounds of the ``mode`` attacker on ground-truth objects with every bit of train, val and test flipped with
    probability p (drawn anew each round), and the val macro-F1 of the flipped labels against the true ones.
    Rate 0 gives the dataset leakage itself (same samples and attacker seeds). ``workers`` > 1: the rates in
    that many processes (one thread each; the numbers do not depend on it)."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    objects, gender, subset = attacker_inputs(labels, split)
    t0 = time.monotonic()
    args = [(objects, gender, subset, mode, rate, attacker, seed) for rate in rates]
    points: list[dict] = [{} for _ in rates]

    def done(i: int, point: dict) -> None:
        points[i] = point
        n = sum(bool(pt) for pt in points)
        log.info("F1-matched leakage (%s attacker%s): rate %.4g done (%d/%d): val F1 %.4f, leakage %.4f (%.0f s)",
                 mode, "" if subset is None else f", split {split}", point["rate"], n, len(rates), point["f1_mean"],
                 point["leakage_mean"], time.monotonic() - t0)

    if workers > 1 and len(rates) > 1:
        with ProcessPoolExecutor(min(workers, len(rates)), mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(f1_curve_point, *a): i for i, a in enumerate(args)}
            for fut in as_completed(futures):
                done(futures[fut], fut.result())
    else:
        for i, a in enumerate(args):
            done(i, f1_curve_point(*a))
    record = {"mode": mode, "split": split if mode == "unbalanced" else "all (full original splits)",
              "attacker": attacker, "rates": list(rates), "points": points, "labels_sha256": sha256_file(labels),
              "time_s": time.monotonic() - t0}
    write_json(out, record)
    return record


def f1_curve_point(objects: dict, gender: dict, subset, mode: str, rate: float, attacker: dict, seed: int) -> dict:
    """One rate of a curve: its rounds' val macro-F1 of the flipped labels and leakage scores (a process-pool
    task, hence a module-level function of picklable arguments)."""
    f1s: list[float] = []

    def flipped_round(r: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([seed, r, round(rate * 1e9)])
        flipped = {s: flip_bits(objects[s], rate, rng) for s in coco.SPLITS}
        f1s.append(macro_f1(flipped["val"], objects["val"]))
        return flipped

    res = leakage(objects, gender, subset, mode, attacker["rounds"], attacker_config(attacker), seed,
                  attacker["n_train_per_group"], attacker["n_eval_per_group"], features_of_round=flipped_round)
    return {"rate": rate, "f1": f1s, "scores": res["scores"], "f1_mean": float(np.mean(f1s)),
            "leakage_mean": res["mean"]}


# -- tables ---------------------------------------------------------------------------------------------------


def _fmt(mean: float, std: float, paper: float, digits: int = 2, flag: str = "", latex: bool = False) -> str:
    pm = r"$\pm$" if latex else "±"
    cell = f"{mean:.{digits}f}" + (f" {pm} {std:.{digits}f}" if not math.isnan(std) else "")
    if not math.isnan(paper):
        cell += f" [{paper:.{digits}f}{flag}, {mean - paper:+.{digits}f}]"
    return cell


def _render(wide, caption: str, label: str, out_md: str, out_tex: str, out_html: str, notes: list[str]) -> None:
    from debias.tables import write_tables

    write_tables(wide, caption, label, out_md, out_tex, out_html, notes)


def table_splits(recipe_file: str, paper: dict, attacker: dict, scale: str, out) -> "Any":
    import pandas as pd

    from debias.io import write_text

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
        {g: [_fmt(c[g], math.nan, paper["values"].get(n, {}).get(g, math.nan), 0) for n, c in rows] + [bal[g]]
         for g in ("man", "woman")},
        index=pd.Index([n for n, _ in rows] + ["balanced attacker: train / val / test (per round)"], name="split"))
    caption = (f"COCO gender subset, images per split and gender [paper value, difference] ({scale} scale). "
               f"Paper: {paper['table']}.")
    _render(wide, caption, "tab:coco_splits", out.md, out.tex, out.html, [paper.get("notes", "").strip()])
    return tidy


def collect_map(metric_files: list[str]):
    import pandas as pd

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
    from debias.io import write_text
    from debias.tables import cells_caption, summarize

    runs = collect_map(metric_files)
    summary = summarize(runs, ["augmentation", "lr"], "test_map", "map")
    summary["paper"] = [paper["values"].get(a, {}).get(_lr_key(lr), math.nan)
                        for a, lr in zip(summary["augmentation"], summary["lr"])]
    summary["delta"] = summary["map_mean"] - summary["paper"]
    summary["scale"] = scale
    write_text(out.csv, summary.to_csv(index=False, float_format="%.6g"))
    cells = summary.assign(cell=[_fmt(m, s, p, 3) for m, s, p in
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
    _render(wide, caption, "tab:coco_map", out.md, out.tex, out.html, [paper.get("notes", "").strip()])
    return summary


AUG_NAMES = {"nomix": "normal", "mixup": "mixup", "cutmix": "cutmix"}


def table_calibration(runs: list[tuple[str, str]], paper: dict, aug: str, configured: str, scale: str,
                      out_csv: str, out_md: str):
    """G2: which regime (``train_layers``: head = frozen backbone, all = whole network) reproduces Table 2's
    no-mix column. ``runs``: (regime, metrics.json). Per regime and lr: test and val mAP (mean over seeds), the
    paper's value and the difference; the regime with the smaller mean |test − paper| over the lrs is named."""
    import pandas as pd

    from debias.io import write_text
    from debias.tables import to_markdown

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
                         [f"{r.test_map:.2f} (val {r.val_map:.2f})"
                          + ("" if math.isnan(r.paper) else f" [{r.paper:.2f}, {r.delta:+.2f}]")
                          for r in d[d["train_layers"] == tl].itertuples()]
                         for tl in gap.index}, index=[f"{lr:.0e}" for lr in d["lr"].unique()])
    wide.index.name = "lr"
    closest = "" if gap.isna().all() else (
        f"Closest to the paper: **{gap.idxmin()}** (mean |test − paper| {gap.min():.2f} points; "
        + ", ".join(f"{tl} {v:.2f}" for tl, v in gap.items()) + "). ")
    write_text(out_md, f"G2 calibration ({scale} scale): {AUG_NAMES.get(aug, aug)} test mAP (%) on the original "
               f"test split, mean over seeds (val mAP) [paper's Table 2, difference], per train_layers regime: head = "
               f"backbone frozen (BN in train mode), all = whole network.\n\n{to_markdown(wide)}\n\n{closest}"
               f"Set coco.hparams.*.train_layers to the regime to use (README, COCO, G2).\n")
    return d


def _lr_key(lr: float) -> str:
    return f"{lr:.0e}"


def collect_leakage(dataset_files: dict[str, str], model_files: list[tuple[dict, str]],
                    model_metrics: list[str] | None = None):
    """Tidy rows: (attacker, pairing, split, what, scores...) from the leakage JSONs; with ``model_metrics`` (one
    metrics.json per model file, same order) the model's val macro-F1 too."""
    import pandas as pd

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
                  model_metrics: list[str] | None = None, f1_curves: dict[str, str] | None = None) -> "Any":
    """Table 3. With ``f1_curves`` (curve file per ``f1_curve_key``) and ``model_metrics``, Wang's F1-matched
    bias amplification too: each model's leakage minus the dataset leakage at the model's val macro-F1."""
    import pandas as pd

    from debias.io import write_text

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
                    "dataset leakage": _fmt(r["dataset_mean"], r["dataset_std"], r["dataset_paper"], latex=latex)}
            for aug in augs:
                cell[AUG_NAMES.get(aug, aug)] = _fmt(r[f"{aug}_mean"], r[f"{aug}_std"], r[f"{aug}_paper"],
                                                     latex=latex)
            flag = "†" if not math.isnan(r["min_delta_printed"]) else ""
            if latex and flag:
                flag = r"$^\dagger$"
            cell["min. bias ampl."] = _fmt(r["min_delta"], math.nan, r["min_delta_paper"], flag=flag, latex=latex)
            if f1_curves:
                cell["min. F1-matched ampl."] = ("–" if math.isnan(r["f1_curve_min"]) else "n/a"
                                                 if math.isnan(r["min_delta_f1"]) else f"{r['min_delta_f1']:.2f}")
            cell["majority"] = f"{r['majority']:.2f}" if r["attacker"] == "unbalanced" else "50 (folded)"
            cells.append(cell)
        wides[latex] = pd.DataFrame(cells).set_index("attacker bal.")
    from debias.tables import cells_caption, write_tables

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


def figure_leakage(tidy, augs: list[str], scale: str, outputs: list[str]) -> None:
    """Model leakage and bias amplification vs split (γ = 1, 2, 3, no balance), unbalanced attacker, random
    pairs; one line per augmentation, dataset leakage in black. The test majority rate, the leakage an attacker gets
    from a model that predicts the same for every image, is drawn as a reference (and, on the right, the Δ such a
    model gets); a model at it (mean within 0.05 points, std at most 0.05) is ringed: its "amplification" is the
    majority rate minus the dataset leakage, not learnt bias."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from debias.plots import save_figure

    d = tidy[(tidy["attacker"] == "unbalanced") & (tidy["pairing"] == tidy["pairing"].iloc[0])]
    xs_order = [s for s in ("gamma1", "gamma2", "gamma3", "none") if s in set(d["split"])]
    d = d.set_index("split").loc[xs_order]
    x = np.arange(len(xs_order))
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.0))
    majority = d["majority"].to_numpy(dtype=float)
    axes[0].plot(x, majority, color="grey", ls=":", lw=1.5, label="majority rate: a constant\npredictor's leakage")
    axes[1].plot(x, majority - d["dataset_mean"].to_numpy(dtype=float), color="grey", ls=":", lw=1.5,
                 label="Δ of a constant predictor")
    axes[0].plot(x, d["dataset_mean"], "k-o", label="dataset")
    if d["dataset_paper"].notna().any():
        axes[0].plot(x, d["dataset_paper"], "k--", lw=1)
    constant = [[], []]  # (x, leakage) and (x, Δ) of every model at the majority rate
    for aug in augs:
        bars = axes[0].errorbar(x, d[f"{aug}_mean"], yerr=d[f"{aug}_std"].fillna(0), marker="o", capsize=3,
                                label=AUG_NAMES.get(aug, aug))
        color = bars.lines[0].get_color()
        axes[1].plot(x, d[f"{aug}_delta"], marker="o", color=color, label=AUG_NAMES.get(aug, aug))
        if d[f"{aug}_paper"].notna().any():
            axes[0].plot(x, d[f"{aug}_paper"], ls="--", lw=1, color=color)
            axes[1].plot(x, d[f"{aug}_paper"] - d["dataset_paper"], ls="--", lw=1, color=color)
        mean, std = d[f"{aug}_mean"].to_numpy(dtype=float), d[f"{aug}_std"].fillna(0).to_numpy(dtype=float)
        at = (np.abs(mean - majority) <= 0.05) & (std <= 0.05)
        constant[0] += [(xi, m) for xi, m in zip(x[at], mean[at])]
        constant[1] += [(xi, v) for xi, v in zip(x[at], d[f"{aug}_delta"].to_numpy(dtype=float)[at])]
    for ax, points in zip(axes, constant):
        if points:
            ax.scatter(*zip(*points), s=160, facecolors="none", edgecolors="k", lw=1.2, zorder=4,
                       label="model at the majority rate")
    axes[1].axhline(0, color="grey", lw=0.8)
    for ax, ylabel in zip(axes, ("leakage (%)", "bias amplification Δ (points)")):
        ax.set_xticks(x, [SPLIT_NAMES[s] for s in xs_order])
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    extra = [(h, lb) for h, lb in zip(*axes[1].get_legend_handles_labels()) if lb.startswith("Δ of")]
    fig.legend([h for h, _ in [*zip(handles, labels), *extra]], [lb for _, lb in [*zip(handles, labels), *extra]],
               fontsize=8, loc="center left", bbox_to_anchor=(0.76, 0.5), frameon=False)
    fig.suptitle(f"COCO gender leakage vs training split, unbalanced attacker ({scale} scale; dashed: paper;\n"
                 "ringed: a model that predicts the same for every image, whose Δ is not learnt bias)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.76, 1))
    save_figure(fig, outputs)
    plt.close(fig)


def figure_f1_curves(curve_files: dict[str, str], model_files: list[tuple[dict, str]], model_metrics: list[str],
                     splits: list[str], scale: str, outputs: list[str]) -> None:
    """Wang's F1-matched leakage, drawn: per attacker, dataset leakage of flipped ground truth against the flipped
    labels' val macro-F1 (a line per curve), and every Table 3 model at its own val macro-F1 and leakage (a point,
    in its split's colour); a model left of its curve's F1 range has no F1-matched value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from debias.plots import save_figure

    raw = collect_leakage({}, model_files, model_metrics)
    with_curve = {m for m in ("unbalanced", "balanced") for s in splits if f1_curve_key(m, s) in curve_files}
    modes = [m for m in ("unbalanced", "balanced") if m in set(raw["attacker"]) & with_curve]
    colors = {s: f"C{i}" for i, s in enumerate(("none", "gamma3", "gamma2", "gamma1"))}
    markers = {"nomix": "o", "mixup": "s", "cutmix": "^"}
    fig, axes = plt.subplots(1, len(modes), figsize=(4.4 * len(modes) + 2.6, 3.8), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        for split in splits:
            key = f1_curve_key(mode, split)
            if key not in curve_files:
                continue
            c = read_f1_curve(curve_files[key])
            order = np.argsort(c["f1"])
            color = "k" if mode == "balanced" else colors.get(split, "grey")
            label = f"flipped ground truth, {mode if mode == 'balanced' else SPLIT_NAMES[split]}"
            ax.plot(np.asarray(c["f1"])[order], np.asarray(c["leakage"])[order], "-", color=color, lw=1.2,
                    marker=".", label=label)
            if mode == "balanced":
                break
        for _, m in raw[raw["attacker"] == mode].iterrows():
            ax.scatter(m["val_f1"], np.mean(m["scores"]), color=colors.get(m["split"], "grey"),
                       marker=markers.get(m["what"], "x"), s=22, zorder=3)
        ax.set_xlabel("val macro-F1 of the object labels (threshold 0.5)")
        ax.set_ylabel("leakage (%)")
        ax.set_title(f"{mode} attacker", fontsize=9)
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=colors[s], marker="o", ls="", label=f"models, {SPLIT_NAMES[s]}")
               for s in splits if s in colors]
    handles += [plt.Line2D([], [], color="grey", marker=mk, ls="", label=AUG_NAMES.get(a, a))
                for a, mk in markers.items() if a in set(raw["what"])]
    lines = [h for ax in axes[0] for h in ax.get_legend_handles_labels()[0]]
    fig.legend(handles=lines + handles, fontsize=7, loc="center right")
    fig.suptitle(f"COCO: dataset leakage of flipped ground truth vs label F1 (lines) and the models (points), "
                 f"{scale} scale", fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.76, 1))
    save_figure(fig, outputs)
    plt.close(fig)
