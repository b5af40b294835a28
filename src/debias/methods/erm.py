"""Empirical risk minimisation: ``baseline`` (plain cross-entropy), ``gray`` (the same on grey images) and
``erm`` (the same update as ``baseline``, with bf16 autocast on CUDA for the photo datasets)."""

from __future__ import annotations

import functools

import torch

from debias.data.image_pipeline import autocast
from debias.losses import member_mean, per_example_loss
from debias.methods.base import Method
from debias.methods.registry import register
from debias.models import Backbone

# ITU-R BT.601 luma weights (PIL's "L" conversion)
LUMA = (0.299, 0.587, 0.114)


def to_gray(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] [B, 3, H, W] -> luma copied to 3 channels, so the network keeps its input shape."""
    return (x * _luma(x.dtype, x.device)).sum(dim=1, keepdim=True).expand_as(x)


@functools.lru_cache(maxsize=None)
def _luma(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The luma weights [1, 3, 1, 1] on ``device``, copied there once (a copy per step makes the host wait)."""
    return torch.tensor(LUMA, dtype=dtype).view(1, 3, 1, 1).to(device)


@register("baseline")
class Baseline(Method):
    batchable = True
    label_kinds = ("single", "multi")
    def __init__(self, backbone: Backbone, hp):
        super().__init__(backbone, hp)
        self.modules["f"] = backbone.features
        self.modules["g"] = backbone.classifier
        self.opt = self.make_sgd("fg", list(self.modules["f"].parameters()) + list(self.modules["g"].parameters()))

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.modules["g"](self.modules["f"](self.transform(x)))

    def update(self, batch):
        self.zero_grad()
        loss = member_mean(per_example_loss(self.logits(batch["x"]), batch["y"]), self.members)
        self.backward(loss)
        self.opt.step()
        return {"loss": loss.detach()}

    def predict(self, x):
        return self.logits(x)


@register("gray")
class Gray(Baseline):
    """Grey images at training and test time (the paper's "Gray" row)."""

    def transform(self, x):
        return to_gray(x)


@register("erm")
class ERM(Baseline):
    """``baseline``'s update (mean cross-entropy, momentum SGD) with the forward under bf16 autocast on CUDA
    (config key ``autocast``, default on; a no-op on CPU, so on CPU ``erm`` and ``baseline`` give the same
    numbers) and the classifier in float32. The base of ``groupdro`` and ``fisher_flat``."""

    optional_hparams = Baseline.optional_hparams + ("autocast",)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The features under autocast, the classifier in float32 on them (as COCO's ``NoMix.logits``): the logits
        that model selection, the group accuracies and the traces read keep float32's precision."""
        with autocast(x.device, self.hp.get("autocast", True)):
            feat = self.modules["f"](self.transform(x))
        return self.modules["g"](feat.float())
