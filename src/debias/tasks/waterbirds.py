"""Waterbirds: landbird vs waterbird photos on land or water backgrounds; four groups (label x place).

Splits ``train`` / ``val`` / ``test`` of the published metadata; ``bias`` is the place (one categorical channel).
The average accuracy weights the group accuracies by the training split's group sizes (the paper's "Avg").
"""

from __future__ import annotations

from typing import Any

import torch

from debias.data import waterbirds as wb
from debias.models import CategoricalBiasHead
from debias.tasks.base import Task
from debias.tasks.registry import register_task


@register_task("waterbirds")
class Waterbirds(Task):
    title = "Waterbirds"
    fields = {s: ("x", "y", "group", "bias", "index") for s in ("train", "val", "test")}
    group_names = wb.GROUP_NAMES
    selection_rules = ("last", "val_average", "val_worst_group")
    default_backbone = "ResNet-50 from ImageNet weights (mini: a 3-block ResNet from scratch), 2 outputs"
    metrics = ("accuracy", "worst_group_accuracy", "weighted_group_accuracy")
    headline = "worst_group_accuracy"

    def load(self, inputs, device, seed):
        prepared = torch.load(inputs["data"], map_location="cpu", weights_only=False)
        splits = {name: {k: v.to(device) for k, v in split.items()} for name, split in prepared["splits"].items()}
        for split in splits.values():
            split["bias"] = split["place"][:, None]
        return splits

    def backbone(self, model_cfg, splits, weights_file=None):
        return make_backbone(model_cfg, weights_file)

    def network(self, model_cfg):
        widths = list(model_cfg.get("widths", (8, 16, 32)))
        return "ResNet-50" if model_cfg["arch"] == "resnet50" else f"small ResNet widths {widths}"

    def synthetic(self, n, model_cfg, image=None):
        y, place = torch.arange(n) % 2, torch.arange(n) // 2 % 2  # every group present
        # the prepared file stores the centre crop (a training batch is the stored image)
        size = image["crop"] if image else 224 if model_cfg["arch"] == "resnet50" else 32
        return {"x": torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8), "y": y, "group": 2 * y + place,
                "bias": place[:, None], "index": torch.arange(n)}


def make_backbone(model_cfg: dict[str, Any], weights_file: str | None = None):
    """ResNet-50 (from the weights file ``weights_file`` that ``model.weights`` names, or random) or the mini small
    ResNet, 2 outputs, ImageNet normalisation of [0, 1] input in front of the features (the engine feeds uint8
    images as float in [0, 1]); a bias head (linear, the place) for the methods that learn the bias."""
    from torch import nn

    from debias.data.image_pipeline import IMAGENET_MEAN, IMAGENET_STD
    from debias.data.pretrained import job_file
    from debias.models import Normalize, resnet50_backbone, small_resnet_backbone

    if model_cfg["arch"] == "resnet50":
        backbone = resnet50_backbone(2, job_file(model_cfg, weights_file, "waterbirds.model.weights"))
    else:
        backbone = small_resnet_backbone(2, model_cfg.get("widths", (8, 16, 32)))
    backbone.features = nn.Sequential(Normalize(IMAGENET_MEAN, IMAGENET_STD), backbone.features)
    width = backbone.classifier.in_features
    backbone.make_bias_head = lambda: CategoricalBiasHead(width, 2)
    return backbone


def train_group_weights(splits) -> dict[int, float]:
    """The training split's group sizes: the weights of the paper's average accuracy."""
    counts = torch.bincount(splits["train"]["group"].long(), minlength=len(wb.GROUP_NAMES))
    return {g: float(c) for g, c in enumerate(counts.tolist())}
