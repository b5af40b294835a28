"""The two example-reweighting datasets: FairFace (White vs people of colour) and the L2RW MNIST 4-vs-9 grid.

A *pool* file (uint8 images and binary labels of a train and a test pool) and a *split* file per majority share (the
train / val / test indices of every seed): a run's splits depend on its seed. One logit (binary); ``group`` is the
class, so the worst group is the worse-classified class. No bias attribute besides the label itself.
"""

from __future__ import annotations

import functools

import torch

from debias.models import l2rw_lenet_backbone
from debias.tasks.base import Task
from debias.tasks.registry import register_task


class _Reweighting(Task):
    fields = {s: ("x", "y", "group", "index") for s in ("train", "val", "test")}
    selection_rules = ("last", "val_average", "val_worst_group")
    default_backbone = "the L2RW LeNet (3 x conv 5x5 + max-pool, fc 100, one logit)"
    metrics = ("accuracy", "worst_group_accuracy")
    headline = "accuracy"
    splits_per_seed = True

    def load(self, inputs, device, seed):
        pool = _read(inputs["pool"])
        split = _read(inputs["split"])["splits"][seed]
        return seed_splits(pool, split, device)

    def backbone(self, model_cfg, splits, weights_file=None):
        x = splits["train"]["x"]
        return l2rw_lenet_backbone(1, x.shape[1], model_cfg["width"], x.shape[-1])

    def network(self, model_cfg):
        return f"LeNet width {model_cfg['width']}"

    def synthetic(self, n, model_cfg, image=None):
        y, size = torch.arange(n) % 2, (image or {}).get("size", 28)  # every class present
        return {"x": torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8), "y": y, "group": y,
                "index": torch.arange(n)}


@register_task("fairface")
class FairFace(_Reweighting):
    title = "FairFace"
    group_names = {0: "poc", 1: "white"}


@register_task("l2rw_mnist")
class L2RWMNIST(_Reweighting):
    title = "L2RW MNIST 4 vs 9"
    group_names = {0: "digit4", 1: "digit9"}


@functools.lru_cache(maxsize=4)  # a job reads its pool and split files once, whatever its number of runs
def _read(path: str) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def seed_splits(pool: dict, split: dict, device: torch.device) -> dict[str, dict[str, torch.Tensor]]:
    """One seed's train / val (both from the train pool) and test splits, on ``device``."""
    out = {}
    for name, source in (("train", "train"), ("val", "train"), ("test", "test")):
        idx = split[name]
        y = pool[f"{source}_y"][idx].to(device)
        out[name] = {"x": pool[f"{source}_x"][idx].to(device), "y": y, "group": y,
                     "index": torch.arange(y.numel(), device=device)}
    return out
