"""Per-sample Fisher-trace constraints ("Debiasing using flatness", Han & Lee; protocol sheet waterbirds.md §1.1,
§2.7, W3–W6): ``fisher_flat``, and the per-sample Fisher traces it needs (usable on any trained model, e.g. to
plot ERM's traces by group, with ``model_traces``).

The trace of sample i, with labels drawn from the model (not the ground truth), exact over the classes:

    T_i = E_{y ~ p(y|x_i)} ‖∇_θ log p(y|x_i)‖² = Σ_y p(y|x_i) ‖∇_θ log p(y|x_i)‖².

``trace: last_layer`` (default, W3): θ = the last linear layer z = W h + b. With softmax p = softmax(z),
∇_W log p_y = (e_y − p) hᵀ and ∇_b log p_y = e_y − p, so ‖∇ log p_y‖² = ‖e_y − p‖² (‖h‖² + 1), and since
‖e_y − p‖² = 1 − 2 p_y + Σ_c p_c², Σ_y p_y ‖e_y − p‖² = 1 − 2 Σ p² + Σ p² = 1 − Σ_c p_c²:

    T_i = (1 − Σ_c p_ic²) (‖h_i‖² + 1)        (2 classes: 2 p_1 p_2 (‖h‖² + 1); no bias: drop the + 1).

A one-logit sigmoid model (p = σ(z)): ∇_w log p(y) = (y − p) h, E_y (y − p)² = p (1 − p), so T = p (1 − p)(‖h‖² + 1).
It is differentiable through p and h, so the penalty moves the whole network, with no per-sample backward.

``trace: full``: θ = every trainable parameter, the paper's literal definition, with ``torch.func``
(``functional_call`` + ``vmap`` over samples of ``jacrev`` over the classes), BatchNorm in eval mode for this
computation (train-mode BN couples the samples of a batch), ``trace_chunk`` samples per vmap chunk. The result
keeps its graph, so training through it is exact (and costly: second order).

``fisher_flat`` (W4–W6): one multiplier μ_i ≥ 0 per training sample (batch field ``index``), batch objective
mean_i(ℓ_i + μ_i (T_i/ε − 1)), then after the SGD step the dual ascent μ_i ← max(0, μ_i + η_μ (T_i/ε − 1)) on the
detached T_i of the step. ``multipliers: max`` is the "largest-trace sample" reading: one μ on max_{i∈B} T_i,
objective mean_i ℓ_i + μ (max_i T_i/ε − 1). The first ``warmup_epochs`` epochs are plain ERM (μ stays 0); at the
start of the first constrained epoch ε = the ``epsilon_percentile``-th percentile of the traces of every training
sample under the weights the warm-up ended with (protocol W5: "after 1 ERM warm-up epoch"; BN in eval mode, the
configured ``trace``), unless the config gives an absolute ``epsilon``. Each sample's latest training trace is
kept for the logs. Logged per step: the batch's mean and max trace, the share of the batch over ε, the mean μ
and the share of samples with μ > 0 (``active_fraction``, over the whole training set), ε, and with a ``group``
field in the training split the mean latest trace per group (``trace_g<k>``, over the samples of the group seen
so far; 0 before any). Logged per epoch, by group: the median and 90th percentile of the latest traces
(``trace_median_g<k>``, ``trace_p90_g<k>``) and the share of samples with μ > 0 (``active_g<k>``).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jacrev, vmap

from debias.batching import batches
from debias.data.image_pipeline import autocast
from debias.losses import per_example_loss
from debias.methods.erm import ERM
from debias.methods.registry import register

TRACES = ("last_layer", "full")
MULTIPLIERS = ("per_sample", "max")


def last_linear(classifier: nn.Module) -> nn.Linear:
    """The classifier's last ``nn.Linear`` (in registration order); that its output is the logits is checked at
    every forward (``FisherFlat.features_and_logits``)."""
    linears = [m for m in classifier.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"the last-layer Fisher trace needs a classifier with an nn.Linear; "
                         f"{type(classifier).__name__} has none")
    return linears[-1]


@contextmanager
def eval_mode(model: nn.Module):
    """``model`` in eval mode inside the block; afterwards every submodule back in its own mode (a wrapper built
    for the call, such as ``nn.Sequential(features, classifier)``, does not know the modes of what it wraps)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def head_input_and_logits(features: nn.Module, classifier: nn.Module, head: nn.Linear, x: torch.Tensor,
                          use_autocast: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(input h of ``head``, logits z) from one forward of classifier(features(x)); checks z is head's output.
    With ``use_autocast`` the features run under bf16 autocast (on CUDA) and the classifier in float32 on them, so
    that z and h, which the closed-form trace reads, are not rounded to bf16's 3 significant digits."""
    seen = {}
    hook = head.register_forward_hook(lambda mod, inp, out: seen.update(h=inp[0], z=out))
    try:
        with autocast(x.device, use_autocast):
            feat = features(x)
        z = classifier(feat.float())
    finally:
        hook.remove()
    if seen.get("z") is not z:
        raise ValueError(f"fisher_flat: the classifier's output is not that of its last linear layer "
                         f"({type(classifier).__name__}); the closed-form trace needs logits = W h + b")
    return seen["h"], z


@torch.no_grad()
def model_traces(features: nn.Module, classifier: nn.Module, x: torch.Tensor, trace: str = "last_layer",
                 batch_size: int = 256, chunk_size: int | None = None) -> torch.Tensor:
    """T_i of a fixed model for every row of ``x`` (already in the model's input view), BN in eval mode, no
    graph kept: e.g. the per-sample traces of a trained ERM model, by group (the paper's premise)."""
    if trace not in TRACES:
        raise ValueError(f"trace {trace!r}; expected one of {', '.join(TRACES)}")
    head = last_linear(classifier)
    out = []
    with eval_mode(nn.Sequential(features, classifier)) as model:
        for xb in x.split(batch_size):
            if trace == "full":
                out.append(full_trace(model, xb, chunk_size))
            else:
                h, z = head_input_and_logits(features, classifier, head, xb)
                out.append(last_layer_trace(z, h, head.bias is not None))
    return torch.cat(out)


def split_traces(features: nn.Module, classifier: nn.Module, split: dict[str, torch.Tensor], trace: str = "last_layer",
                 batch_size: int = 256, chunk_size: int | None = None, channels_last: bool = False) -> torch.Tensor:
    """``model_traces`` of every sample of a stored split (its ``x`` read batch by batch as the engine feeds it:
    uint8 images scaled to [0, 1]), in split order."""

    order = torch.arange(split["y"].shape[0], device=split["y"].device)
    return torch.cat([model_traces(features, classifier, b["x"], trace, batch_size, chunk_size)
                      for b in batches(split, order, batch_size, channels_last)])


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    """log p(y|x) for every class: log-softmax, or for one logit z the two classes (log σ(−z), log σ(z))."""
    if logits.shape[-1] == 1:
        return torch.cat([F.logsigmoid(-logits), F.logsigmoid(logits)], dim=-1)
    return F.log_softmax(logits, dim=-1)


def prediction_spread(logits: torch.Tensor) -> torch.Tensor:
    """1 − Σ_c p_c² (for one logit: p (1 − p)), accurate for confident predictions too.

    Written as Σ_c p_c (1 − p_c) with log(1 − p_c) = logsumexp_{k≠c} log p_k, so it never subtracts two numbers
    near 1: ``1 - p.pow(2).sum()`` in float32 is exactly 0 once the top logit leads by about 17, where the true value
    is still about 2e-8 (what a log-scale plot of confident samples' traces shows)."""
    lp = log_probs(logits.float())
    if logits.shape[-1] == 1:
        return (lp[:, 0] + lp[:, 1]).exp()
    n = lp.shape[-1]
    others = lp.unsqueeze(-2).expand(*lp.shape[:-1], n, n).masked_fill(torch.eye(n, dtype=torch.bool,
                                                                                 device=lp.device), -torch.inf)
    return (lp + torch.logsumexp(others, dim=-1)).exp().sum(-1)


def last_layer_trace(logits: torch.Tensor, h: torch.Tensor, bias: bool = True) -> torch.Tensor:
    """T_i over the last linear layer's (W, b), closed form: (1 − Σ_c p_c²)(‖h‖² + 1), computed in float32."""
    return prediction_spread(logits) * (h.float().flatten(1).pow(2).sum(-1) + (1.0 if bias else 0.0))


def full_trace(model: nn.Module, x: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
    """T_i over every trainable parameter of ``model`` (x -> logits), BN in eval mode, exact over the classes.

    The result is differentiable w.r.t. the parameters (second order through ``torch.func``)."""
    with eval_mode(model):
        params = {k: p for k, p in model.named_parameters() if p.requires_grad}
        buffers = dict(model.named_buffers())

        def sample_log_probs(p, xi):
            lp = log_probs(functional_call(model, ({**p, **buffers},), (xi[None],))[0])
            return lp, lp

        def one(xi):
            jac, lp = jacrev(sample_log_probs, has_aux=True)(params, xi)  # jac: name -> [C, *shape]
            sq = sum(j.flatten(1).pow(2).sum(1) for j in jac.values())  # [C]: ‖∇_θ log p_y‖²
            return (lp.exp() * sq).sum()

        return vmap(one, chunk_size=chunk_size)(x)


def dual_step(mu: torch.Tensor, index: torch.Tensor, violation: torch.Tensor, step_size: float) -> torch.Tensor:
    """μ_i ← max(0, μ_i + η (T_i/ε − 1)) in place; a sample drawn twice gets both increments before the clamp."""
    mu.index_add_(0, index, step_size * violation.detach().to(mu.dtype))
    return mu.clamp_(min=0.0)


@register("fisher_flat")
class FisherFlat(ERM):
    needs = ("x", "y", "index")
    label_kinds = ("single",)  # the closed-form trace is the softmax's (or one logit's sigmoid)
    # optional: epsilon (absolute; replaces the percentile), trace_chunk (trace: full)
    hparams = ERM.hparams + ("trace", "multipliers", "dual_step_size", "epsilon_percentile", "warmup_epochs")
    optional_hparams = ERM.optional_hparams + ("epsilon", "trace_chunk")

    def __init__(self, backbone, hp):
        super().__init__(backbone, hp)
        for key, allowed in (("trace", TRACES), ("multipliers", MULTIPLIERS)):
            if hp[key] not in allowed:
                raise ValueError(f"fisher_flat: {key} {hp[key]!r}; expected one of {', '.join(allowed)}")
        if hp["warmup_epochs"] < 1 and hp.get("epsilon") is None:
            raise ValueError("fisher_flat: warmup_epochs 0 leaves no traces to take the epsilon percentile from; "
                             "give warmup_epochs >= 1 or an absolute epsilon")
        if not 0 <= hp["epsilon_percentile"] <= 100:
            raise ValueError(f"fisher_flat: epsilon_percentile {hp['epsilon_percentile']} outside 0..100")
        self.head = last_linear(self.modules["g"])
        self.epsilon: float | None = None
        self.constrained = False
        self.mu = self.last_trace = self.train_group = self.train_split = None
        self.num_groups = 0

    # -- set-up ---------------------------------------------------------------------------------------
    def attach(self, splits):
        train = self.train_split = splits["train"]
        n, device = train["y"].shape[0], train["y"].device
        self.mu = torch.zeros(n if self.hp["multipliers"] == "per_sample" else 1, device=device)
        self.last_trace = torch.full((n,), -1.0, device=device)  # < 0: not seen yet
        if "group" in train:
            self.train_group = train["group"].long()
            self.num_groups = int(self.train_group.max()) + 1

    def on_epoch_start(self, epoch, total_epochs, steps_per_epoch):
        logs = super().on_epoch_start(epoch, total_epochs, steps_per_epoch)
        self.constrained = epoch >= self.hp["warmup_epochs"]
        if self.constrained and self.epsilon is None:
            self.epsilon = self.initial_epsilon()
        return {**logs, "epsilon": self.epsilon or 0.0}

    def selectable(self, epoch: int) -> bool:
        """Not the warm-up epochs (plain ERM). With per-sample multipliers not the first constrained epoch either:
        each sample is drawn once per epoch and its μ_i, 0 until its first visit, moves only after it, so every
        step of that epoch has μ = 0 on its batch and the epoch's weights are still ERM's (bit for bit)."""
        return epoch > self.first_unselectable(self.hp)

    @classmethod
    def first_unselectable(cls, hp) -> int:
        """The last epoch ``selectable`` refuses (0: none)."""
        return hp["warmup_epochs"] + (1 if hp["multipliers"] == "per_sample" else 0)

    @classmethod
    def min_epochs(cls, hp) -> int:
        return cls.first_unselectable(hp) + 1

    def initial_epsilon(self) -> float:
        if self.hp.get("epsilon") is not None:
            return float(self.hp["epsilon"])
        eps = torch.quantile(self.training_set_traces().double(), self.hp["epsilon_percentile"] / 100.0).item()
        if eps <= 0:
            raise RuntimeError(f"fisher_flat: the {self.hp['epsilon_percentile']}th percentile of the training traces "
                               f"after the warm-up is {eps}; epsilon must be > 0")
        return eps

    def training_set_traces(self) -> torch.Tensor:
        """T_i of every training sample under the current weights, BN in eval mode, no graph."""
        # in float32 throughout (one pass, no graph): epsilon is then the percentile of the same traces the
        # Waterbirds traces record reads, not of bf16-rounded ones
        return split_traces(self.modules["f"], self.modules["g"], self.train_split, self.hp["trace"],
                            chunk_size=self.hp.get("trace_chunk")).float()

    # -- one step -------------------------------------------------------------------------------------
    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(input of the last linear layer h, logits z), both float32, from one forward of the classifier."""
        return head_input_and_logits(self.modules["f"], self.modules["g"], self.head, x, self.hp.get("autocast", True))

    def traces(self, x: torch.Tensor, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.hp["trace"] == "last_layer":
            return last_layer_trace(z, h, self.head.bias is not None)
        network = nn.Sequential(self.modules["f"], self.modules["g"])
        if self.constrained:
            return full_trace(network, x, self.hp.get("trace_chunk"))
        with torch.no_grad():
            return full_trace(network, x, self.hp.get("trace_chunk"))

    def update(self, batch):
        self.zero_grad()
        idx = batch["index"].long()
        h, z = self.features_and_logits(batch["x"])
        losses = per_example_loss(z, batch["y"])
        t = self.traces(batch["x"], h, z)
        self.last_trace[idx] = t.detach()
        logs = {"loss": losses.mean().detach(), "trace_mean": t.mean().detach(), "trace_max": t.max().detach()}
        if self.constrained:
            violation = t / self.epsilon - 1.0
            if self.hp["multipliers"] == "per_sample":
                objective = (losses + self.mu[idx] * violation).mean()
            else:
                violation = violation.max().reshape(1)
                objective = losses.mean() + self.mu[0] * violation[0]
        else:
            objective = losses.mean()
        objective.backward()
        self.opt.step()
        if self.constrained:
            where = idx if self.hp["multipliers"] == "per_sample" else torch.zeros(1, dtype=torch.long, device=idx.device)
            dual_step(self.mu, where, violation, self.hp["dual_step_size"])
        over = (t.detach() > self.epsilon).float().mean() if self.constrained else objective.new_zeros(())
        logs.update({
            "objective": objective.detach(),
            "over_epsilon": over,
            "mu_mean": self.mu.mean(),
            "active_fraction": (self.mu > 0).float().mean(),
        })
        logs.update(self.group_trace_means())
        return logs

    def on_epoch_end(self, epoch):
        """Per group, the distribution of the latest traces (median, 90th percentile) and the share of samples whose
        μ > 0: the protocol's check that the constraint binds where the traces are large (one sync per epoch)."""
        logs = super().on_epoch_end(epoch)
        if self.train_group is None:
            return logs
        for g in range(self.num_groups):
            in_group = self.train_group == g
            seen = self.last_trace[in_group & (self.last_trace >= 0)]
            if seen.numel():
                median, p90 = torch.quantile(seen.double(), seen.new_tensor([0.5, 0.9], dtype=torch.double)).tolist()
                logs.update({f"trace_median_g{g}": median, f"trace_p90_g{g}": p90})
            if self.hp["multipliers"] == "per_sample":
                logs[f"active_g{g}"] = (self.mu[in_group] > 0).float().mean().item()
        return logs

    def group_trace_means(self) -> dict[str, torch.Tensor]:
        if self.train_group is None:
            return {}
        seen = self.last_trace >= 0
        out = {}
        for g in range(self.num_groups):
            mask = seen & (self.train_group == g)
            out[f"trace_g{g}"] = (self.last_trace * mask).sum() / mask.sum().clamp(min=1)
        return out

    # -- state ----------------------------------------------------------------------------------------
    def state_dict(self):
        return {**super().state_dict(), "mu": self.mu, "last_trace": self.last_trace, "epsilon": self.epsilon}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.mu = state["mu"].to(self.mu.device)
        self.last_trace = state["last_trace"].to(self.last_trace.device)
        self.epsilon = state["epsilon"]
