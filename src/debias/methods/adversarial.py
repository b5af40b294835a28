"""Adversarial bias removal with a bias head h on the features of f.

- ``blindeye``: Alvi et al. (2018) confusion loss; h learns the bias on frozen features, then f and g learn
  the task plus alpha * CE(uniform, h(f(x))), with h frozen.
- ``lnl``: Learning Not to Learn (Kim et al., 2019) as in the reference code: (1) f, g step on
  CE + lambda * negative entropy of h(f(x)); (2) h learns the bias through a gradient-reversal layer, so f
  receives -mu times the bias gradient.
- ``lnl_adaptive``: the same with the reversal factor ramped per the reproduction's Eq. 10,
  mu * (2 / (1 + exp(-gamma)) - 1), gamma = epochs of unlearning so far (or 10 x training progress).
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from debias.losses import mean_cross_entropy, member_mean
from debias.methods.base import Method
from debias.methods.registry import register
from debias.models import Backbone


class GradReverse(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``-factor``."""

    @staticmethod
    def forward(ctx, x, factor: float):
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.factor * grad, None


def grad_reverse(x: torch.Tensor, factor: float) -> torch.Tensor:
    return GradReverse.apply(x, factor)


def grl_ramp(gamma: float) -> float:
    """Eq. 10 of the reproduction: 2 / (1 + exp(-gamma)) - 1, from 0 at gamma = 0 towards 1."""
    return 2.0 / (1.0 + math.exp(-gamma)) - 1.0


def mean_neg_entropy(logits: torch.Tensor, members: int = 1) -> torch.Tensor:
    """Mean over batch, positions and colour channels of sum_k q_k log q_k, q = softmax over dim 1 (per run of a
    batch of ``members`` runs, ``member_mean``).

    Computed from log-softmax, so a saturated softmax (q_k = 0) gives 0 * finite, never NaN.
    """
    logq = F.log_softmax(logits, dim=1)
    return member_mean((logq.exp() * logq).sum(dim=1), members)


def mean_ce_to_uniform(logits: torch.Tensor, members: int = 1) -> torch.Tensor:
    """Cross-entropy between the uniform distribution and softmax(logits) over dim 1, averaged elsewhere (per run
    of a batch of ``members`` runs)."""
    return -member_mean(F.log_softmax(logits, dim=1).mean(dim=1), members)


def bias_ce(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255, members: int = 1) -> torch.Tensor:
    """Sum over bias channels c of the mean CE of logits[:, :, c] vs target[:, c], ignoring ``ignore_index``; with
    ``members`` > 1, per run of the batch (each run's mean over its own valid targets), shape [members].

    A channel whose targets are all ignored contributes 0 (not NaN).
    """
    total = logits.new_zeros(()) if members == 1 else logits.new_zeros(members)
    for c in range(target.shape[1]):
        t = target[:, c].long()
        if members == 1:
            valid = (t != ignore_index).sum()
            # summed here, not by reduction="sum": that is CUDA's nll_loss2d with atomic adds (not deterministic)
            loss = F.cross_entropy(logits[:, :, c], t, ignore_index=ignore_index, reduction="none").sum()
        else:
            valid = (t != ignore_index).reshape(members, -1).sum(dim=1)
            loss = F.cross_entropy(logits[:, :, c], t, ignore_index=ignore_index, reduction="none")
            loss = loss.reshape(members, -1).sum(dim=1)
        total = total + loss / valid.clamp(min=1)
    return total


@contextlib.contextmanager
def frozen(module: torch.nn.Module):
    """Skip the weight gradients of ``module`` (gradients still flow through it to its input)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class _WithBiasHead(Method):
    needs = ("x", "y", "bias")
    label_kinds = ("single", "multi")  # the task loss is mean_cross_entropy's: sigmoid CE on multi-hot rows

    def __init__(self, backbone: Backbone, hp):
        super().__init__(backbone, hp)
        if backbone.make_bias_head is None:
            raise ValueError(f"method {self.name!r} needs a bias head, and this experiment's model has none")
        self.modules["f"] = backbone.features
        self.modules["g"] = backbone.classifier
        self.modules["h"] = backbone.make_bias_head()
        self.opt_fg = self.make_sgd("fg", list(self.modules["f"].parameters()) + list(self.modules["g"].parameters()))
        self.opt_h = self.make_sgd("h", self.modules["h"].parameters())

    def predict(self, x):
        return self.modules["g"](self.modules["f"](x))


@register("blindeye")
class BlindEye(_WithBiasHead):
    batchable = True  # every loss reduced per run
    hparams = _WithBiasHead.hparams + ("alpha",)

    def update(self, batch):
        f, g, h = self.modules["f"], self.modules["g"], self.modules["h"]
        feat = f(batch["x"])  # one forward of f serves both phases: f does not change in between
        # (a) the bias head learns the bias from frozen features
        self.zero_grad()
        loss_h = bias_ce(h(feat.detach()), batch["bias"], members=self.members)
        self.backward(loss_h)
        self.opt_h.step()
        # (b) f and g learn the task and to confuse the bias head as it is after (a) (h is not stepped)
        self.zero_grad()
        loss_cls = mean_cross_entropy(g(feat), batch["y"], self.members)
        with frozen(h):
            loss_conf = mean_ce_to_uniform(h(feat), self.members)
            self.backward(loss_cls + self.hp["alpha"] * loss_conf)
        self.opt_fg.step()
        return {"loss": loss_cls.detach(), "bias_loss": loss_h.detach(), "confusion": loss_conf.detach()}


@register("lnl")
class LearningNotToLearn(_WithBiasHead):
    batchable = True  # every loss reduced per run
    hparams = _WithBiasHead.hparams + ("entropy_weight", "grl_factor")

    def grl_factor(self) -> float:
        return self.hp["grl_factor"]

    def update(self, batch):
        f, g, h = self.modules["f"], self.modules["g"], self.modules["h"]
        # (1) f, g: task loss + lambda * negative entropy of h's colour prediction (h is not stepped)
        self.zero_grad()
        feat = f(batch["x"])
        loss_cls = mean_cross_entropy(g(feat), batch["y"], self.members)
        with frozen(h):  # h's gradients of this pass would be zeroed before its step anyway
            neg_ent = mean_neg_entropy(h(feat), self.members)
            self.backward(loss_cls + self.hp["entropy_weight"] * neg_ent)
        self.opt_fg.step()
        # (2) h learns the colour; f gets the reversed gradient (second forward pass, as the reference)
        self.zero_grad()
        feat = grad_reverse(f(batch["x"]), self.grl_factor())
        loss_bias = bias_ce(h(feat), batch["bias"], members=self.members)
        self.backward(loss_bias)
        self.opt_fg.step()
        self.opt_h.step()
        return {"loss": loss_cls.detach(), "neg_entropy": neg_ent.detach(), "bias_loss": loss_bias.detach()}


@register("lnl_adaptive")
class LearningNotToLearnAdaptive(LearningNotToLearn):
    """LNL with the reversal factor ramped by Eq. 10 of the reproduction (``ramp_variable``: epoch | progress)."""

    hparams = LearningNotToLearn.hparams + ("ramp_variable",)

    def __init__(self, backbone, hp):
        super().__init__(backbone, hp)
        if hp["ramp_variable"] not in ("epoch", "progress"):
            raise ValueError(f"ramp_variable: expected 'epoch' or 'progress', got {hp['ramp_variable']!r}")
        self.gamma = 0.0
        self.ramp_per_step = 0.0

    def on_epoch_start(self, epoch, total_epochs, steps_per_epoch):
        logs = super().on_epoch_start(epoch, total_epochs, steps_per_epoch)  # the lr schedule
        if self.hp["ramp_variable"] == "epoch":
            self.gamma, self.ramp_per_step = float(epoch), 0.0
        else:  # DANN form, gamma = 10 * progress, advanced every step
            self.gamma = 10.0 * epoch / total_epochs
            self.ramp_per_step = 10.0 / (total_epochs * steps_per_epoch)
        return {**logs, "grl_ramp": grl_ramp(self.gamma)}

    def grl_factor(self):
        return self.hp["grl_factor"] * grl_ramp(self.gamma)

    batchable = True  # the update is LNL's, the factor shared by every run of a batch

    def update(self, batch):
        logs = super().update(batch)
        logs["grl_factor"] = torch.tensor(self.grl_factor(), device=logs["loss"].device)
        self.gamma += self.ramp_per_step
        return logs
