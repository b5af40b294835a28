"""Colored MNIST (Learning Not to Learn): ten digit classes whose training images carry their class's colour.

Splits ``train`` and ``test`` (the paper selects no model: there is no validation split; one cut from the training
set would hold bias-aligned images only). ``bias``: the colour-bin targets of every pixel and channel (training
split); ``group``: 1 where an image's colour is its own class's, 0 where it is another class's, -1 unknown.
"""

from __future__ import annotations

import torch

from debias.data import colored_mnist as cm
from debias.models import colored_mnist_backbone
from debias.tasks.base import Task
from debias.tasks.registry import register_task

GROUP_NAMES = {0: "bias_conflicting", 1: "bias_aligned"}


@register_task("colored_mnist")
class ColoredMNIST(Task):
    title = "Colored MNIST"
    fields = {"train": ("x", "y", "bias", "group", "index"), "test": ("x", "y", "group")}
    group_names = GROUP_NAMES
    selection_rules = ("last",)
    default_backbone = "LNL's conv net: f (conv 5x5, pool, conv 3x3), g (2 conv + linear), h (colour heads)"
    metrics = ("accuracy", "worst_group_accuracy")
    headline = "accuracy"

    def load(self, inputs, device, seed):
        return _splits(inputs["data"], device)

    def backbone(self, model_cfg, splits, weights_file=None):
        m = model_cfg
        return colored_mnist_backbone(m["width"], 10, m["n_bins"], m["mean"], m["std"])

    def network(self, model_cfg):
        return f"conv net width {model_cfg['width']}"

    def synthetic(self, n, model_cfg, image=None):
        x = torch.randint(0, 256, (n, 3, 28, 28), dtype=torch.uint8)
        return {"x": x, "y": torch.arange(n) % 10, "bias": cm.color_bin_targets(x),
                "group": torch.randint(0, 2, (n,)), "index": torch.arange(n)}


def _splits(data_file: str, device: torch.device):
    splits = cm.training_splits(torch.load(data_file, map_location="cpu", weights_only=True), device)
    splits["train"]["index"] = torch.arange(splits["train"]["y"].numel(), device=device)
    return splits
