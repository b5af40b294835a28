"""Leakage: how well an attacker MLP predicts a protected attribute (gender) from a 79-d object vector.

Wang et al.'s attacker (``object_multilabel/model.py``, hidden 300): BN(d) → Linear(d,300) → BN → LeakyReLU →
Linear(300,300) → BN → LeakyReLU → Linear(300,300) → BN → LeakyReLU → Linear(300,2), 2-way cross-entropy,
Adam (lr 5e-5, wd 1e-5), batch 128, 100 epochs; the epoch with the best validation accuracy is kept and scored
on test. Dataset leakage feeds it ground-truth object vectors, model leakage the classifier's raw logits.

Two attackers (protocol G9, G10), ``rounds`` times each, mean ± std:
- ``balanced``: each round draws n_train men + n_train women from train and n_eval + n_eval from val and from
  test; test accuracy folded as 0.5 + |acc − 0.5|;
- ``unbalanced``: the whole train (sub)set, the whole val and test splits, plain accuracy; the majority rate
  of test is reported beside it (a constant "man" attacker scores it).

Wang et al.'s F1-matched dataset leakage (``natural_leakage.py``): the ground truth with every bit flipped
with probability p (train, val and test, drawn anew each round), the same attacker on it, and the macro-F1 of
the flipped val labels against the true ones; over a list of rates this traces dataset leakage as a function
of label quality (F1), read off at a model's own F1 (``f1_matched``) so that the model is compared with
ground truth of the same quality rather than with perfect labels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from debias.metrics import folded_accuracy


def attacker_mlp(in_features: int, hidden: int = 300, out: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = [nn.BatchNorm1d(in_features)]
    width = in_features
    for _ in range(3):
        layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU()]
        width = hidden
    layers.append(nn.Linear(width, out))
    return nn.Sequential(*layers)


@dataclass
class AttackerConfig:
    epochs: int = 100
    lr: float = 5e-5
    weight_decay: float = 1e-5
    batch_size: int = 128
    hidden: int = 300


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).double().mean().item()
    model.train()
    return acc


def train_attacker(data: dict[str, tuple[torch.Tensor, torch.Tensor]], cfg: AttackerConfig, seed: int) -> dict:
    """Train on data['train'], keep the epoch with the best data['val'] accuracy; its accuracy on data['test']."""
    torch.manual_seed(seed)
    x_tr, y_tr = data["train"]
    model = attacker_mlp(x_tr.shape[1], cfg.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    best = {"val": -1.0, "test": float("nan"), "epoch": 0}
    n = x_tr.shape[0]
    for epoch in range(cfg.epochs):
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            if idx.numel() < 2:  # BatchNorm cannot train on one sample
                continue
            opt.zero_grad()
            loss_fn(model(x_tr[idx]), y_tr[idx]).backward()
            opt.step()
        val = _accuracy(model, *data["val"])
        if val > best["val"]:
            best = {"val": val, "test": _accuracy(model, *data["test"]), "epoch": epoch + 1}
    return best


def balanced_sample(gender: np.ndarray, per_group: int, rng: np.random.Generator, where: str) -> np.ndarray:
    """``per_group`` indices of each gender value (0 and 1), drawn without replacement."""
    out = []
    for g in (0, 1):
        idx = np.flatnonzero(gender == g)
        if len(idx) < per_group:
            raise ValueError(f"{where}: {len(idx)} samples of gender {g}, cannot draw {per_group}")
        out.append(rng.choice(idx, per_group, replace=False))
    return np.sort(np.concatenate(out))


def leakage(features: dict[str, np.ndarray], gender: dict[str, np.ndarray], train_subset: np.ndarray | None,
            mode: str, rounds: int, cfg: AttackerConfig, seed: int = 0, n_train_per_group: int = 3000,
            n_eval_per_group: int = 1500,
            features_of_round: Callable[[int], dict[str, np.ndarray]] | None = None) -> dict:
    """Leakage of ``features`` (per split: [N, d]) about ``gender`` (per split: [N] in {0, 1}).

    ``train_subset``: indices of the training split the unbalanced attacker trains on (the γ-subset; None = all).
    The balanced attacker draws from the full splits (protocol G10). ``features_of_round(r)``, if given, gives
    round r's features instead of ``features`` (the flipped labels of the F1-matched leakage); the draws of the
    samples and the attacker seeds stay those of the plain call.
    """
    if mode not in ("balanced", "unbalanced"):
        raise ValueError(f"leakage mode {mode!r}; expected 'balanced' or 'unbalanced'")
    rng = np.random.default_rng(seed)
    scores, epochs = [], []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batches of 128 x 300: one thread is fastest, more only contend (measured 12x)
    try:
        for r in range(rounds):
            feats = features if features_of_round is None else features_of_round(r)
            _one_round(feats, gender, train_subset, mode, cfg, seed, r, rng, n_train_per_group,
                       n_eval_per_group, scores, epochs)
    finally:
        torch.set_num_threads(threads)
    test_majority = float(max(np.mean(gender["test"]), 1 - np.mean(gender["test"])))
    return {"mode": mode, "rounds": rounds, "scores": scores, "mean": float(np.mean(scores)),
            "std": float(np.std(scores, ddof=1)) if rounds > 1 else float("nan"), "selected_epochs": epochs,
            "test_majority_rate": test_majority}


def _one_round(features, gender, train_subset, mode, cfg, seed, r, rng, n_train_per_group, n_eval_per_group,
               scores, epochs) -> None:
    if mode == "balanced":
        pick = {"train": balanced_sample(gender["train"], n_train_per_group, rng, "train"),
                "val": balanced_sample(gender["val"], n_eval_per_group, rng, "val"),
                "test": balanced_sample(gender["test"], n_eval_per_group, rng, "test")}
    else:
        pick = {"train": np.arange(len(gender["train"])) if train_subset is None else np.asarray(train_subset),
                "val": np.arange(len(gender["val"])), "test": np.arange(len(gender["test"]))}
    data = {s: (torch.as_tensor(features[s][pick[s]], dtype=torch.float32),
                torch.as_tensor(gender[s][pick[s]], dtype=torch.long)) for s in pick}
    best = train_attacker(data, cfg, seed * 1000 + r)
    scores.append(folded_accuracy(best["test"]) if mode == "balanced" else best["test"])
    epochs.append(best["epoch"])


def flip_bits(labels: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """``labels`` (0/1) with every entry flipped independently with probability ``rate``."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"flip rate {rate}; expected a probability in [0, 1]")
    flip = rng.random(labels.shape) < rate
    return np.where(flip, 1 - labels, labels).astype(labels.dtype)


def f1_matched(curve_f1: list[float], curve_leakage: list[float], f1: float) -> float:
    """Dataset leakage at label quality ``f1``: linear interpolation of the (F1, leakage) points of the flip
    rates, taken in order of F1; NaN outside the F1 range the rates cover (no extrapolation)."""
    f = np.asarray(curve_f1, dtype=float)
    v = np.asarray(curve_leakage, dtype=float)
    if f.shape != v.shape or f.size == 0:
        raise ValueError(f"curve of {f.size} F1 values and {v.size} leakages; expected the same number, >= 1")
    order = np.argsort(f, kind="stable")
    f, v = f[order], v[order]
    if math.isnan(f1) or f1 < f[0] or f1 > f[-1]:
        return math.nan
    return float(np.interp(f1, f, v))
