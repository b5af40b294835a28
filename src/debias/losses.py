"""Per-example losses and predicted labels for one-logit binary models and multi-class models alike.

A model with one output unit is a binary classifier trained with sigmoid cross-entropy (label = logit > 0);
a model with C > 1 outputs uses softmax cross-entropy (label = argmax).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def per_example_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if logits.dim() == 2 and logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0], y.to(logits.dtype), reduction="none")
    return F.cross_entropy(logits, y, reduction="none")


def predicted_labels(logits: torch.Tensor) -> torch.Tensor:
    if logits.dim() == 2 and logits.shape[1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(dim=1)
