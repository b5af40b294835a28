"""COCO gender leakage (paper 000), stage leakage (rules coco_dataset_leakage, coco_model_leakage,
coco_f1_leakage): the attacker on ground-truth objects (dataset leakage) or on a model's logits (model leakage); and
Wang's F1-matched dataset leakage: the attacker on ground truth flipped at a list of rates, a curve of leakage
against the flipped labels' val macro-F1, read off at each model's val macro-F1 (protocol G12; the tables do)."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context

import numpy as np
import torch

from debias.data import coco
from debias.experiments.coco_keys import gamma_of
from debias.io import sha256_file, write_json
from debias.leakage import AttackerConfig, flip_bits, leakage
from debias.metrics import macro_f1

log = logging.getLogger(__name__)


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
