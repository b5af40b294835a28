"""Evaluation metrics: accuracy, per-group accuracy (with the worst group) and the group accuracies weighted by
given group sizes (Waterbirds' "average accuracy": the training split's group proportions, WILDS'
``adj_acc_avg``)."""

from __future__ import annotations

import torch


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Share of ``pred == y``; ``pred`` are class indices."""
    if y.numel() == 0:
        raise ValueError("accuracy of an empty set")
    return (pred == y).double().mean().item()


def group_accuracies(pred: torch.Tensor, y: torch.Tensor, group: torch.Tensor) -> dict[int, float]:
    """Accuracy per group id (ids < 0 mean 'unknown' and are left out)."""
    return {int(gid): accuracy(pred[group == gid], y[group == gid]) for gid in torch.unique(group) if gid >= 0}


def weighted_group_accuracy(per_group: dict[int, float], weights: dict[int, float]) -> float:
    """Σ_g w_g acc_g / Σ_g w_g over the groups of ``weights`` (e.g. the training split's group counts); every
    weighted group must have an accuracy."""
    missing = [g for g in weights if g not in per_group]
    if missing:
        raise ValueError(f"weighted group accuracy: groups {missing} have a weight but no sample in this split "
                         f"(groups present: {sorted(per_group)})")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError(f"weighted group accuracy: weights {weights} sum to {total}; expected > 0")
    return sum(w * per_group[g] for g, w in weights.items()) / total


def classification_metrics(pred: torch.Tensor, y: torch.Tensor, group: torch.Tensor | None = None,
                           group_names: dict[int, str] | None = None,
                           group_weights: dict[int, float] | None = None) -> dict[str, float]:
    """Accuracy (plain, over samples); with ``group``: per-group and worst-group accuracy (the lowest group
    accuracy, whichever group it is); with ``group_weights`` too: ``weighted_group_accuracy``."""
    out = {"accuracy": accuracy(pred, y), "n": int(y.numel())}
    if group is not None:
        per_group = group_accuracies(pred, y, group)
        if per_group:
            names = group_names or {}
            for gid, acc in per_group.items():
                out[f"acc_{names.get(gid, f'group{gid}')}"] = acc
            out["worst_group_accuracy"] = min(per_group.values())
            if group_weights:
                out["weighted_group_accuracy"] = weighted_group_accuracy(per_group, group_weights)
    return out


# -- multi-label (COCO objects) ---------------------------------------------------------------------------


def average_precision(scores, y) -> float:
    """Average precision of one class: Σ_n (R_n − R_{n−1}) · P_n over the distinct score thresholds, from the
    highest down (the definition of scikit-learn's ``average_precision_score``); NaN without positives."""
    import numpy as np

    scores, y = np.asarray(scores, dtype=np.float64), np.asarray(y).astype(bool)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    s, t = scores[order], y[order]
    tp = np.cumsum(t)
    last_of_tie = np.r_[s[1:] != s[:-1], True]  # thresholds: keep the last index of each run of equal scores
    tp = tp[last_of_tie]
    k = np.flatnonzero(last_of_tie) + 1
    precision, recall = tp / k, tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(scores, y) -> tuple[float, int]:
    """Macro mean of per-class AP over the classes with at least one positive; (mAP, number of classes used)."""
    import numpy as np

    scores, y = np.asarray(scores), np.asarray(y)
    aps = [average_precision(scores[:, c], y[:, c]) for c in range(y.shape[1])]
    used = [a for a in aps if not np.isnan(a)]
    if not used:
        raise ValueError("mAP: no class has a positive example")
    return float(np.mean(used)), len(used)


def macro_f1(pred, y) -> float:
    """Unweighted mean over classes of F1 = 2TP / (2TP + FP + FN) of 0/1 predictions; 0 for a class where the
    denominator is 0 (scikit-learn's ``f1_score(average='macro', zero_division=0)``)."""
    import numpy as np

    pred, y = np.asarray(pred).astype(bool), np.asarray(y).astype(bool)
    tp = (pred & y).sum(0)
    denom = 2 * tp + (pred & ~y).sum(0) + (~pred & y).sum(0)
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    return float(f1.mean())


def folded_accuracy(acc: float) -> float:
    """Accuracy of a binary attacker folded around chance: 0.5 + |acc − 0.5| (Wang et al.'s leakage score)."""
    return 0.5 + abs(acc - 0.5)
