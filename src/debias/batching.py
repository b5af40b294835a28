"""Batches out of a split kept whole on the device: every field indexed at once, uint8 images made float (or made
by a task's training view). Below the engine and the methods, so both import it (a method that reads a whole split,
e.g. fisher_flat's traces, batches it the engine's way)."""

from __future__ import annotations

import torch


def make_batch(split: dict[str, torch.Tensor], idx: torch.Tensor, channels_last: bool = False, view=None):
    """Index every field; ``x`` stored as uint8 is converted to float in [0, 1], or made by ``view`` from the stored
    x. A split whose ``x`` is shared with others (COCO's γ-subsets of the train images) says which of its rows are
    the split's in ``x_rows``."""
    batch = {k: v[idx] for k, v in split.items() if k not in ("x", "x_rows")}
    x = split["x"][split["x_rows"][idx]] if "x_rows" in split else split["x"][idx]
    if view is not None:
        batch["x"] = view(x)
        return batch
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    batch["x"] = x
    return batch


def batches(split: dict[str, torch.Tensor], order: torch.Tensor, batch_size: int, channels_last: bool = False):
    """Consecutive batches of ``order`` (the last one may be smaller)."""
    for start in range(0, order.numel(), batch_size):
        yield make_batch(split, order[start : start + batch_size], channels_last)
