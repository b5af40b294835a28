"""Example reweighting (Ren et al. 2018, "Learning to Reweight Examples"; its FairFace re-run):
``proportion``, ``resample``, ``hardmining``, ``random`` and ``l2rw``, each a weighted version of
``baseline``: one step minimises sum_i w_i * loss_i with the weights held constant.

All work on one-logit binary and on multi-class models (``debias.losses``). Where the paper speaks of the
"majority" and "minority" class, the majority is the most frequent class of the training split.
"""

from __future__ import annotations

import contextlib

import torch
from torch.func import functional_call

from debias.losses import member_mean, member_sum, per_example_loss
from debias.methods.erm import Baseline
from debias.methods.registry import register
from debias.stacked import StackedModule


def class_counts(y: torch.Tensor) -> torch.Tensor:
    return torch.bincount(y.long(), minlength=2).double()


def normalise(w: torch.Tensor, members: int = 1) -> torch.Tensor:
    """w / sum(w), with the reference guard: all-zero weights stay zero (the step then has no gradient). With
    ``members`` > 1, each batched run's weights over its own sum."""
    if members == 1:
        total = w.sum()
        return w / (total + (total == 0).to(w.dtype))
    total = w.reshape(members, -1).sum(dim=1, keepdim=True)
    return (w.reshape(members, -1) / (total + (total == 0).to(w.dtype))).reshape(w.shape)


@contextlib.contextmanager
def batch_norm_stats_kept(model: torch.nn.Module):
    """Forwards inside leave every batch-norm layer's running statistics (and batch count) as they are.

    A training-mode layer still normalises with the batch's own statistics, so outputs do not change; it only
    stops tracking for the while (what ``torch.func.replace_all_batch_norm_modules_`` does for good). For
    forwards that are not training steps, which also run inside torch.func transforms, where a write to a
    buffer is refused."""

    modules = [m for sub in model.modules() for m in (sub.template.modules() if isinstance(sub, StackedModule)
                                                       else [sub])]
    layers = [m for m in modules
              if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats]
    for m in layers:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in layers:
            m.track_running_stats = True


class _Reweighted(Baseline):
    batchable = True  # the step's sums and the weights' normalisation are per run (``members``)

    def weights(self, batch, losses: torch.Tensor) -> torch.Tensor:
        """Per-example weights of the batch (held constant in the step); with several runs batched, the weights of
        each run's own part of the batch."""
        return torch.full_like(losses, self.members / losses.numel())

    def weighted_losses(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(weights, per-example losses with their graph)."""
        losses = per_example_loss(self.logits(batch["x"]), batch["y"])
        return self.weights(batch, losses), losses

    def update(self, batch):
        self.zero_grad()
        w, losses = self.weighted_losses(batch)
        w = w.detach()
        loss = member_sum(w * losses, self.members)
        self.backward(loss)
        self.opt.step()
        return {"loss": member_mean(losses, self.members).detach(), "weighted_loss": loss.detach(),
                "weight_sum": member_sum(w, self.members)}


@register("proportion")
class Proportion(_Reweighted):
    """Inverse class frequency, normalised over classes, not over the batch (the reference code: for two
    classes with majority share p, weight p for the minority and 1 - p for the majority)."""

    label_kinds = ("single",)  # a class frequency per sample needs one class per sample

    def attach(self, splits):
        super().attach(splits)
        inv = 1.0 / class_counts(splits["train"]["y"]).clamp(min=1)
        self.class_weight = (inv / inv.sum()).float().to(splits["train"]["y"].device)

    def attach_batch(self, members):
        self.class_weight = torch.stack([m.class_weight for m in members])  # [runs, classes]

    def weights(self, batch, losses):
        if self.members == 1:
            return self.class_weight[batch["y"]]
        run = torch.arange(self.members, device=losses.device).repeat_interleave(losses.numel() // self.members)
        return self.class_weight[run, batch["y"]]


@register("resample")
class Resample(Baseline):
    """Class-balanced batches: each step draws batch_size / C examples of every class, with replacement."""

    label_kinds = ("single",)

    def attach(self, splits):
        super().attach(splits)
        y = splits["train"]["y"]
        self.class_index = [torch.nonzero(y == c).flatten() for c in range(int(y.max()) + 1)]
        if any(len(i) == 0 for i in self.class_index):
            raise ValueError("resample: a class has no training example")

    def attach_batch(self, members):
        """Nothing to gather: each run draws its batches with its own sampler (``batched.epoch_member_indices``)."""

    def batch_sampler(self, n: int, batch_size: int, steps: int, gen: torch.Generator):
        per_class = batch_size // len(self.class_index)
        for _ in range(steps):
            yield torch.cat([idx[torch.randint(len(idx), (per_class,), generator=gen).to(idx.device)]
                             for idx in self.class_index])


@register("hardmining")
class HardMining(_Reweighted):
    """All minority examples of the batch plus the k = max(#minority, 1) majority examples of highest loss,
    weights normalised to sum 1. ``ties: reference`` reproduces the official code, which ranks by the
    batch-mean loss, so all majority examples tie and the first k in batch order are taken."""

    hparams = Baseline.hparams + ("ties",)
    label_kinds = ("single",)  # minority and majority are classes

    def attach(self, splits):
        super().attach(splits)
        y = splits["train"]["y"]
        self.majority = class_counts(y).argmax().reshape(1).to(y.device)  # [runs]: one run here

    def attach_batch(self, members):
        self.majority = torch.cat([m.majority for m in members])  # per run

    def weights(self, batch, losses):
        return self.batched_weights(batch["y"], losses)  # one run is a batch of one: no host wait for k

    def batched_weights(self, y: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """The weights of every run of a batch at once (one run unbatched), without a loop or a value read on the
        host (laid out as the batch: run after run): a majority example is chosen where its rank among its run's
        majority examples (batch order, or loss order for ``ties: loss``) is below that run's k."""
        runs = self.members
        y, losses = y.reshape(runs, -1), losses.detach().reshape(runs, -1)
        major = y == self.majority.to(y.device)[:, None]
        k = (~major).sum(dim=1, keepdim=True).clamp(min=1)
        if self.hp["ties"] == "reference":
            rank = major.long().cumsum(dim=1) - 1
        elif self.hp["ties"] == "loss":  # rank by loss, highest first, among the majority (stable: batch order)
            key = torch.where(major, losses, torch.full_like(losses, -torch.inf))
            order = torch.sort(key, dim=1, descending=True, stable=True).indices
            rank = torch.empty_like(order).scatter_(1, order, torch.arange(y.shape[1], device=y.device).expand_as(order))
        else:
            raise ValueError(f"hardmining ties: expected 'reference' or 'loss', got {self.hp['ties']!r}")
        w = ((~major) | (major & (rank < k))).to(losses.dtype)
        return normalise(w.reshape(-1), runs)


@register("random")
class RandomWeights(_Reweighted):
    """w = max(z, 0) / sum max(z, 0), z ~ N(0, 1) per example and step.

    The draws come from the run's own random stream, seeded from the run's seed when the method is built (the
    process's stream at that point), on the training device: batched runs each draw what they would alone, and a
    resumed run continues its stream (saved with the method's state)."""

    def __init__(self, backbone, hp):
        super().__init__(backbone, hp)
        self.stream_seed = int(torch.randint(2**62, (), device="cpu").item())
        self.generators: list[torch.Generator] = []

    def attach(self, splits):
        super().attach(splits)
        device = splits["train"]["y"].device
        # meta (the device-placement tests) has no generator of its own and ignores one: the CPU's stands in
        self.generators = [torch.Generator("cpu" if device.type == "meta" else device).manual_seed(self.stream_seed)]

    def attach_batch(self, members):
        self.generators = [m.generators[0] for m in members]

    def weights(self, batch, losses):
        if not self.generators:
            raise RuntimeError("random: weights drawn before attach() (the run's random stream is made there)")
        per_run = losses.numel() // self.members
        z = torch.cat([torch.randn(per_run, generator=g, device=losses.device) for g in self.generators])
        return normalise(z.clamp(min=0), self.members)

    def state_dict(self):
        return {**super().state_dict(), "generators": [g.get_state() for g in self.generators]}

    def load_state_dict(self, state):
        if "generators" not in state:
            raise ValueError("random: the saved state holds no random stream of the run's own (saved by a version "
                             "that drew from the process's stream); delete the run's state.pt to start it afresh")
        super().load_state_dict(state)
        for g, saved in zip(self.generators, state["generators"], strict=True):
            g.set_state(saved)


@register("l2rw")
class LearningToReweight(_Reweighted):
    """Meta-gradient weights at eps = 0 (Ren et al. 2018, Algorithm 1), with torch.func:
    L_f(theta, eps) = sum_i eps_i l_i(theta); theta' = theta - alpha * grad_theta L_f; u = d L_val(theta') / d eps;
    w = max(-u, 0), normalised with the all-zero guard. The training forward is shared with the real update; it
    is the only forward of a step that moves batch-norm running statistics (the look-ahead, validation and jvp
    forwards leave them alone), so a step moves them once, as a baseline step does."""

    needs = ("x", "y")
    needs_splits = ("val",)  # the clean meta set: ``meta`` where the task gives one, else ``val``
    hparams = Baseline.hparams + ("meta_lr",)
    optional_hparams = Baseline.optional_hparams + ("meta_gradient",)  # lookahead (default) | forward

    def compile(self, mode: str) -> "LearningToReweight":
        """Eager whatever ``train.compile`` says (the job log says so): the meta-gradient differentiates through
        the training step, and torch.compile's autograd does not support that double backward."""
        super().compile("none")
        if mode != "none":
            import sys

            print(f"l2rw: train.compile {mode!r} not applied, l2rw trains eagerly (torch.compile does not support "
                  "the double backward of its meta-gradient)", file=sys.stderr, flush=True)
        return self

    def attach(self, splits):
        super().attach(splits)
        if "val" not in splits and "meta" not in splits:
            raise KeyError("l2rw needs a clean validation split ('val' or 'meta') and this dataset has none")
        val = splits.get("meta", splits.get("val"))
        self.val_x = val["x"].float().div(255.0) if val["x"].dtype == torch.uint8 else val["x"]
        self.val_y = val["y"]

    def attach_batch(self, members):
        """Every run's own validation set, one after another (the batched forward splits them by run)."""
        sizes = {len(m.val_y) for m in members}
        if len(sizes) != 1:
            raise ValueError(f"l2rw: batched runs need validation splits of one size; got sizes {sorted(sizes)}")
        self.val_x = torch.cat([m.val_x for m in members])
        self.val_y = torch.cat([m.val_y for m in members])

    def val_loss(self, logits: torch.Tensor) -> torch.Tensor:
        """Mean validation loss; batched, the sum of the runs' own means (run n's look-ahead moves only its own)."""
        loss = member_mean(per_example_loss(logits, self.val_y), self.members)
        return loss if loss.dim() == 0 else loss.sum()

    def meta_weights(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(weights, per-example losses with their graph kept for the real update)."""
        model = torch.nn.Sequential(self.modules["f"], self.modules["g"])
        params = dict(model.named_parameters())
        buffers = dict(model.named_buffers())
        losses = per_example_loss(functional_call(model, (params, buffers), (x,)), y)
        eps = torch.zeros_like(losses, requires_grad=True)
        grads = torch.autograd.grad((eps * losses).sum(), list(params.values()), create_graph=True)
        lookahead = {k: p - self.hp["meta_lr"] * g for (k, p), g in zip(params.items(), grads)}
        with batch_norm_stats_kept(model):  # the validation forward is no training step
            val_loss = self.val_loss(functional_call(model, (lookahead, buffers), (self.val_x,)))
        (u,) = torch.autograd.grad(val_loss, eps, retain_graph=True)
        return normalise((-u).clamp(min=0), self.members), losses

    def forward_mode_weights(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The same weights without second-order autodiff. At eps = 0 the look-ahead leaves theta unchanged, so
        u_i = -meta_lr * <grad L_val(theta), grad l_i(theta)>: one validation gradient, then all B directional
        derivatives in one forward-mode (jvp) pass along it."""
        model = torch.nn.Sequential(self.modules["f"], self.modules["g"])
        params = {k: p.detach() for k, p in model.named_parameters()}
        buffers = dict(model.named_buffers())

        def val_loss(p):
            return self.val_loss(functional_call(model, (p, buffers), (self.val_x,)))

        with batch_norm_stats_kept(model):  # the real update's forward moves the statistics, once
            direction = torch.func.grad(val_loss)(params)
            _, dots = torch.func.jvp(lambda p: per_example_loss(functional_call(model, (p, buffers), (x,)), y),
                                     (params,), (direction,))
        return normalise((self.hp["meta_lr"] * dots).clamp(min=0), self.members)

    def weighted_losses(self, batch):
        if self.hp.get("meta_gradient", "lookahead") == "forward":
            w = self.forward_mode_weights(batch["x"], batch["y"])
            return w, per_example_loss(self.logits(batch["x"]), batch["y"])
        return self.meta_weights(batch["x"], batch["y"])  # the training forward is shared with the update
