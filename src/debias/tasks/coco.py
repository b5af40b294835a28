"""COCO gender subset (Wang et al.'s split): multi-label object classification on images with one gender.

Splits ``train`` / ``val`` / ``test``; ``y``: the multi-hot objects row; ``group`` and ``bias``: the gender of the
image's people (0 man, 1 woman). Images stay uint8 whole on the device; a training batch is a random crop and flip
made there (``image_pipeline``), evaluation reads the centre crop. Evaluation: mAP over the classes with a positive
example (and per gender: the worse of the two), macro-F1 at threshold 0.5 (what model selection reads).
"""

from __future__ import annotations

from typing import Any

import torch

from debias.data import coco
from debias.data.image_pipeline import Pipeline
from debias.io import sha256_file
from debias.metrics import macro_f1, mean_average_precision
from debias.models import CategoricalBiasHead
from debias.tasks.base import Task
from debias.tasks.registry import register_task

GROUP_NAMES = {0: "man", 1: "woman"}


@register_task("coco")
class COCO(Task):
    title = "COCO gender"
    label_kind = "multi"
    fields = {s: ("x", "y", "group", "bias", "index") for s in ("train", "val", "test")}
    group_names = GROUP_NAMES
    selection_rules = ("last", "val_macro_f1")
    default_backbone = "ResNet-50 from ImageNet weights (mini: a 3-block ResNet from scratch), one output per object"
    metrics = ("mAP", "worst_group_mAP", "macro_f1")
    headline = "mAP"
    worst_and_average = ("worst_group_mAP", "mAP")
    min_batch = 2  # batch norm cannot train on one image

    def __init__(self):
        self._cache: dict = {}

    def load(self, inputs, device, seed):
        x, y, g, lab, _, _ = read(inputs["data"], inputs["labels"], device, self._cache)
        splits = {}
        for s in coco.SPLITS:
            n = y[s].shape[0]
            splits[s] = {"x": x[s], "y": y[s], "group": g[s], "bias": g[s][:, None],
                         "index": torch.arange(n, device=device)}
        return splits

    def backbone(self, model_cfg, splits, weights_file=None):
        backbone = make_backbone(model_cfg, splits["train"]["y"].shape[1], weights_file)
        width = backbone.classifier.in_features
        backbone.make_bias_head = lambda: CategoricalBiasHead(width, len(GROUP_NAMES))
        return backbone

    def pipeline(self, cfg: dict[str, Any]) -> Pipeline:
        return Pipeline(crop=cfg["image"]["crop"], channels_last=cfg["train"].get("channels_last", False))

    def train_view(self, cfg):
        return self.pipeline(cfg).train_view

    def evaluator(self, cfg):
        pipe, batch_size = self.pipeline(cfg), cfg["train"].get("eval_batch_size", 256)

        def evaluate(method, split):
            logits = split_logits(method, split["x"], pipe, batch_size).numpy()
            truth = split["y"].cpu().numpy()
            group = split["group"].cpu().numpy()
            m, used = mean_average_precision(logits, truth)
            per_group = {name: mean_average_precision(logits[group == g], truth[group == g])[0]
                         for g, name in GROUP_NAMES.items() if (group == g).any()}
            return {"mAP": m, "classes_in_mAP": used, "macro_f1": macro_f1(logits > 0, truth),
                    "group_mAP": per_group, "worst_group_mAP": min(per_group.values()), "n": int(truth.shape[0])}

        return evaluate

    def network(self, model_cfg):
        return "ResNet-50" if model_cfg["arch"] == "resnet50" else f"small ResNet widths {list(model_cfg['widths'])}"

    def synthetic(self, n, model_cfg, image=None):
        # the stored images (a training batch is ``train_view``'s random crop of them)
        size = image["stored"] if image else 256 if model_cfg["arch"] == "resnet50" else 28
        gender = torch.randint(0, 2, (n,))
        return {"x": torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8),
                "y": (torch.rand(n, 79) < 0.05).float(), "group": gender, "bias": gender[:, None],
                "index": torch.arange(n)}


def make_backbone(model: dict[str, Any], num_outputs: int, weights_file: str | None = None):
    """ResNet-50 (from the weights file ``weights_file`` that ``model.weights`` names, or random) or the mini small
    ResNet."""
    from debias.data.pretrained import job_file
    from debias.models import resnet50_backbone, small_resnet_backbone

    if model["arch"] == "resnet50":
        return resnet50_backbone(num_outputs, job_file(model, weights_file, "coco.model.weights"))
    if model["arch"] == "small_resnet":
        return small_resnet_backbone(num_outputs, model["widths"])
    raise ValueError(f"config key coco.model.arch: {model['arch']!r}; expected resnet50 or small_resnet")


def read(data: str, labels: str, dev: torch.device, cache: dict):
    """(images, objects, genders per split on ``dev``, the labels file, both sha256), read once per ``cache``."""
    key = (str(data), str(labels), str(dev))
    if key not in cache:
        # memory-mapped: the full-scale file (6.6 GB of uint8 images) goes to the device split by split instead of
        # being read whole into host memory first (a Slurm job's mem_mb would not hold it)
        images = torch.load(data, map_location="cpu", weights_only=True, mmap=True)
        lab = torch.load(labels, map_location="cpu", weights_only=True)
        cache.clear()
        cache[key] = ({s: images[s].to(dev) for s in coco.SPLITS},
                      {s: lab["splits"][s]["objects"].float().to(dev) for s in coco.SPLITS},
                      {s: lab["splits"][s]["gender"].to(dev) for s in coco.SPLITS},
                      lab, sha256_file(labels), sha256_file(data))
    return cache[key]


@torch.no_grad()
def split_logits(method, x: torch.Tensor, pipe: Pipeline, batch_size: int, train_view: bool = False,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """The method's logits of every image of ``x`` (centre crop, or the training view), on the CPU."""
    method.train(False)
    out = []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size]
        xb = pipe.train_view(xb, generator) if train_view else pipe.eval_view(xb)
        out.append(method.predict(xb).float().cpu())
    method.train(True)
    return torch.cat(out)
