"""Per-example losses and predicted labels for one-logit binary, multi-class and multi-label models alike.

A model with one output unit is a binary classifier trained with sigmoid cross-entropy (label = logit > 0);
a model with C > 1 outputs uses softmax cross-entropy (label = argmax) on class indices, and on a multi-hot float
target of the logits' shape (multi-label) the mean over the C classes of the sigmoid cross-entropy (labels = logits
> 0).

``member_mean`` is the batch mean every method of a batched run (``debias.batched``) reduces with: for one run the
plain mean, for N runs batched one mean per run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def multi_label(logits: torch.Tensor, y: torch.Tensor) -> bool:
    """Whether ``y`` is a multi-hot target row per example (float, the logits' shape, more than one output)."""
    return y.is_floating_point() and y.shape == logits.shape and logits.dim() == 2 and logits.shape[1] > 1


def per_example_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if multi_label(logits, y):
        return F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(dim=1)
    if logits.dim() == 2 and logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0], y.to(logits.dtype), reduction="none")
    return F.cross_entropy(logits, y, reduction="none")


def predicted_labels(logits: torch.Tensor) -> torch.Tensor:
    if logits.dim() == 2 and logits.shape[1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(dim=1)


def member_mean(values: torch.Tensor, members: int = 1) -> torch.Tensor:
    """Mean of per-example values (any trailing shape: positions, channels). With ``members`` > 1 the values are
    those of N batched runs one after another along dim 0, and the result is each run's own mean, shape [N]."""
    if members == 1:
        return values.mean()
    return values.reshape(members, -1).mean(dim=1)


def member_sum(values: torch.Tensor, members: int = 1) -> torch.Tensor:
    """Sum of per-example values; with ``members`` > 1 each batched run's own sum, shape [N] (``member_mean``)."""
    if members == 1:
        return values.sum()
    return values.reshape(members, -1).sum(dim=1)


def mean_cross_entropy(logits: torch.Tensor, y: torch.Tensor, members: int = 1) -> torch.Tensor:
    """``F.cross_entropy`` (mean over the batch), per run with ``members`` > 1 (``member_mean``); on a multi-label
    target the mean sigmoid cross-entropy (``per_example_loss``)."""
    if multi_label(logits, y):
        return member_mean(per_example_loss(logits, y), members)
    if members == 1:
        return F.cross_entropy(logits, y)
    return member_mean(F.cross_entropy(logits, y, reduction="none"), members)

