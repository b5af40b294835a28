"""Mixed-sample augmentation: ``nomix`` (plain training), ``mixup`` and ``cutmix``, on any dataset.

Targets are soft: class indices become one-hot rows, multi-hot rows stay as they are, and a mixed target is
λ·y_a + (1−λ)·y_b. Both losses the methods offer are affine in the target, so the loss of a mixed target
equals λ·loss(y_a) + (1−λ)·loss(y_b) exactly (protocol sheet 2.4), also with per-class weights:

- ``loss: bce``: multi-label weighted BCE-with-logits with Wang et al.'s per-class weights
  w_c = #neg_c / #pos_c of the training split (``weight=``, multiplying both terms); a class without positives
  would get ~1e19 in the reference code, here it gets the largest weight of the classes present (clamped);
- ``loss: ce``: soft-target cross-entropy.

Partners (``pairing``): ``random`` (a random permutation of the batch, as the official code) or ``balanced``
(every sample is mixed with a sample of the other value of the batch field ``pair_field``, e.g. gender: each
mixed pair is one man and one woman image). A sample whose batch holds no partner of the other value stays
unmixed (λ = 1) and is counted in the logged ``unpaired``.

λ per sample (``lam: sample``, protocol default G6) or one Beta draw per batch (``lam: batch``, as the official
code draws it). CutMix follows the official box sampling (clovaai/CutMix-PyTorch ``rand_bbox``) for every
sample: cut ratio √(1−λ), box centre uniform over all pixels, corners clipped at the border, the partner's box
pasted, and λ recomputed as 1 − box area / image area (``label_weights: area``). The box centre is drawn per
sample also under ``lam: batch``: the samples share the drawn λ (their boxes' size before clipping) but not the
box position, so the clipped areas, and with them the area λ, still differ between samples; the official code
pastes one box, at one position, on the whole batch (one area λ per batch). ``label_weights: seed`` gives the
seed paper's literal weights instead: ỹ = λ·y_partner + (1−λ)·y_self with the drawn λ (protocol G7). CutMix's
``prob`` (default 1) is the probability that a batch is mixed at all, one draw per batch as the official
``cutmix_prob``; a batch not mixed trains on its own images and targets (all its samples logged ``unpaired``).

What trains (``train_layers``): ``all`` or ``head`` (the features frozen, their BatchNorm layers still in
train mode so their running statistics move, as in Wang et al.'s stage 1; protocol G2).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from debias.data.image_pipeline import autocast
from debias.methods.base import Method
from debias.methods.registry import register
from debias.models import Backbone


def soft_targets(y: torch.Tensor, num_outputs: int) -> torch.Tensor:
    """One-hot rows for class indices; a [B, 1] column for the labels of a one-logit binary model; float rows
    (multi-hot or already soft) as they are."""
    if y.dim() == 1 and num_outputs == 1:
        return y.float()[:, None]
    if y.dim() == 1 and not y.is_floating_point():
        return F.one_hot(y, num_outputs).float()
    return y.float()


def reference_class_weights(y_multi_hot: torch.Tensor) -> torch.Tensor:
    """w_c = #neg_c / #pos_c; classes without positives get the largest weight of the classes present."""
    y = y_multi_hot.float()
    pos = y.sum(0)
    neg = y.shape[0] - pos
    w = neg / pos.clamp(min=1)
    present = pos > 0
    if not present.any():
        raise ValueError("class weights: no class has a positive example in the training split")
    return torch.where(present, w, w[present].max())


def weighted_bce(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, target, weight=weight)


def soft_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -(target * F.log_softmax(logits, dim=1)).sum(1).mean()


def random_partners(n: int, device) -> torch.Tensor:
    return torch.randperm(n, device=device)


def balanced_partners(group: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For every sample, a partner drawn uniformly from the samples of another group value in the batch.

    Returns (partner index, paired mask); samples with no other-group sample in the batch are their own
    partner and unpaired.
    """
    other = group[None, :] != group[:, None]  # [B, B]: j may partner i
    scores = torch.rand(other.shape, device=group.device).masked_fill(~other, -1.0)
    partner = scores.argmax(1)
    paired = other.any(1)
    return torch.where(paired, partner, torch.arange(group.numel(), device=group.device)), paired


def cutmix_boxes(lam: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, ...]:
    """The official ``rand_bbox`` for each λ: (r1, r2, c1, c2) half-open row / column ranges, clipped."""
    dev = lam.device
    cut_rat = torch.sqrt(1.0 - lam)
    cut_h = (h * cut_rat).long()  # int() truncation as np.int
    cut_w = (w * cut_rat).long()
    cy = torch.randint(0, h, lam.shape, device=dev)
    cx = torch.randint(0, w, lam.shape, device=dev)
    r1 = (cy - cut_h // 2).clamp(0, h)
    r2 = (cy + cut_h // 2).clamp(0, h)
    c1 = (cx - cut_w // 2).clamp(0, w)
    c2 = (cx + cut_w // 2).clamp(0, w)
    return r1, r2, c1, c2


def box_mask(r1, r2, c1, c2, h: int, w: int) -> torch.Tensor:
    rows = torch.arange(h, device=r1.device)[None, :]
    cols = torch.arange(w, device=r1.device)[None, :]
    in_r = (rows >= r1[:, None]) & (rows < r2[:, None])  # [B, h]
    in_c = (cols >= c1[:, None]) & (cols < c2[:, None])  # [B, w]
    return (in_r[:, :, None] & in_c[:, None, :])[:, None]  # [B, 1, h, w]


@register("nomix")
class NoMix(Method):
    """Plain training with the chosen loss; the base of mixup and CutMix."""

    label_kinds = ("single", "multi")
    hparams = ("lr", "weight_decay", "loss", "train_layers")
    # Adam at a constant lr (the paper's); ``optimizer: sgd`` with ``momentum`` (and the lr schedule keys) trains on
    # another task's SGD schedule (the method x dataset matrix)
    optional_hparams = ("autocast", "pairing", "pair_field", "optimizer", "momentum", "lr_step_epochs", "lr_gamma",
                        "lr_halve_second_half")

    def __init__(self, backbone: Backbone, hp: dict[str, Any]):
        super().__init__(backbone, hp)
        self.modules["f"] = backbone.features
        self.modules["g"] = backbone.classifier
        self.head_only = hp["train_layers"] == "head"
        if hp["train_layers"] not in ("head", "all"):
            raise ValueError(f"{self.name}: train_layers {hp['train_layers']!r}; expected 'head' or 'all'")
        if hp["loss"] not in ("bce", "ce"):
            raise ValueError(f"{self.name}: loss {hp['loss']!r}; expected 'bce' or 'ce'")
        if self.head_only:
            self.modules["f"].requires_grad_(False)
        params = [p for p in self.modules.parameters() if p.requires_grad]
        optimizer = hp.get("optimizer", "adam")
        if optimizer == "sgd":
            self.opt = self.make_sgd("fg", params)
        elif optimizer == "adam":
            self.opt = torch.optim.Adam(params, lr=hp["lr"], weight_decay=hp["weight_decay"])
            self.optimizers["fg"] = self.opt
        else:
            raise ValueError(f"{self.name}: optimizer {optimizer!r}; expected 'adam' or 'sgd'")
        self.use_autocast = hp.get("autocast", True)
        self.class_weight: torch.Tensor | None = None  # set by attach from the training split
        self._beta: dict[torch.device, torch.distributions.Beta] = {}  # mixup / cutmix: Beta(alpha, alpha) per device
        if hp.get("pairing", "random") == "balanced":
            self.needs = ("x", "y", hp.get("pair_field", "group"))

    @classmethod
    def required_fields(cls, hp):
        return (hp.get("pair_field", "group"),) if hp.get("pairing", "random") == "balanced" else ()

    def attach(self, splits):
        if self.hp["loss"] == "bce":
            y = splits["train"]["y"]
            self.class_weight = reference_class_weights(y).to(y.device)

    def state_dict(self):
        return {**super().state_dict(), "class_weight": self.class_weight}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        weight = state.get("class_weight")  # loaded onto the CPU: back to the device attach put the weights on
        if weight is not None and self.class_weight is not None:
            weight = weight.to(self.class_weight.device)
        self.class_weight = weight

    def num_outputs(self) -> int:
        """Output width of the classifier: its last Linear layer's (the one-hot width of class-index targets)."""
        return [m for m in self.modules["g"].modules() if isinstance(m, torch.nn.Linear)][-1].out_features

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The features under bf16 autocast (on CUDA), the head in float32: the logits are what mAP, the val
        macro-F1 of model selection and the leakage attackers read, as Wang et al.'s float32 model gives them (a
        bf16 head would round them to about 3 significant digits)."""
        with autocast(x.device, self.use_autocast):
            if self.head_only:
                with torch.no_grad():
                    feat = self.modules["f"](x)
            else:
                feat = self.modules["f"](x)
        return self.modules["g"](feat.float())

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] == 1:  # one-logit binary model: sigmoid cross-entropy whatever `loss` says
            return weighted_bce(logits, target, None)
        if self.hp["loss"] == "bce":
            return weighted_bce(logits, target, self.class_weight)
        return soft_ce(logits, target)

    def mix(self, batch) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        return batch["x"], soft_targets(batch["y"], self.num_outputs()), {}

    def partners(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        n = batch["x"].shape[0]
        if self.hp.get("pairing", "random") == "balanced":
            return balanced_partners(batch[self.hp.get("pair_field", "group")])
        return random_partners(n, batch["x"].device), torch.ones(n, dtype=torch.bool, device=batch["x"].device)

    def draw_lam(self, n: int, paired: torch.Tensor, device) -> torch.Tensor:
        beta = self._beta.get(device)
        if beta is None:  # made once per device: two host-to-device copies and three checks a step would sync
            a = torch.tensor(float(self.hp["alpha"]), device=device)
            beta = self._beta[device] = torch.distributions.Beta(a, a, validate_args=False)
        lam = beta.sample((n,)) if self.hp.get("lam", "sample") == "sample" else beta.sample().expand(n)
        return torch.where(paired, lam, torch.ones_like(lam))

    def update(self, batch):
        self.zero_grad()
        x, target, logs = self.mix(batch)
        loss = self.loss(self.logits(x), target)
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach(), **logs}

    def predict(self, x):
        return self.logits(x)


@register("mixup")
class Mixup(NoMix):
    hparams = NoMix.hparams + ("alpha", "pairing")
    optional_hparams = NoMix.optional_hparams + ("lam",)

    def mix(self, batch):
        x, y = batch["x"], soft_targets(batch["y"], self.num_outputs())
        partner, paired = self.partners(batch)
        lam = self.draw_lam(x.shape[0], paired, x.device)
        lx = lam.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
        x_mix = lx * x + (1 - lx) * x[partner]
        y_mix = lam[:, None] * y + (1 - lam[:, None]) * y[partner]
        return x_mix, y_mix, {"lam": lam.mean(), "unpaired": (~paired).sum().float()}


@register("cutmix")
class CutMix(NoMix):
    hparams = NoMix.hparams + ("alpha", "pairing", "label_weights")
    optional_hparams = NoMix.optional_hparams + ("lam", "prob")

    def mix(self, batch):
        x, y = batch["x"], soft_targets(batch["y"], self.num_outputs())
        n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
        partner, paired = self.partners(batch)
        apply = torch.rand((), device=x.device) < self.hp.get("prob", 1.0)
        paired = paired & apply
        lam0 = self.draw_lam(n, paired, x.device)
        r1, r2, c1, c2 = cutmix_boxes(lam0, h, w)
        mask = box_mask(r1, r2, c1, c2, h, w) & paired.view(-1, 1, 1, 1)
        x_mix = torch.where(mask, x[partner], x)
        area = ((r2 - r1) * (c2 - c1)).float() * paired.float()
        lam = 1.0 - area / (h * w)
        if self.hp["label_weights"] == "seed":
            y_mix = lam0[:, None] * y[partner] + (1 - lam0[:, None]) * y
            y_mix = torch.where(paired[:, None], y_mix, y)
        elif self.hp["label_weights"] == "area":
            y_mix = lam[:, None] * y + (1 - lam[:, None]) * y[partner]
        else:
            raise ValueError(f"cutmix: label_weights {self.hp['label_weights']!r}; expected 'area' or 'seed'")
        return x_mix, y_mix, {"lam": lam.mean(), "unpaired": (~paired).sum().float()}
