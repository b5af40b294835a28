"""Evaluation metrics: accuracy and per-group accuracy (with the worst group)."""

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


def classification_metrics(pred: torch.Tensor, y: torch.Tensor, group: torch.Tensor | None = None,
                           group_names: dict[int, str] | None = None) -> dict[str, float]:
    out = {"accuracy": accuracy(pred, y), "n": int(y.numel())}
    if group is not None:
        per_group = group_accuracies(pred, y, group)
        if per_group:
            names = group_names or {}
            for gid, acc in per_group.items():
                out[f"acc_{names.get(gid, f'group{gid}')}"] = acc
            out["worst_group_accuracy"] = min(per_group.values())
    return out
