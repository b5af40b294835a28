"""Group DRO (Sagawa, Koh, Hashimoto, Liang, ICLR 2020; kohpangwei/group_DRO ``loss.py``), on any dataset whose
batches carry ``group``.

One step, on the batch's per-sample cross-entropies ℓ_i:

- per-group mean losses ℓ_g = Σ_{i: g_i = g} ℓ_i / max(n_g^batch, 1) (0 for a group absent from the batch);
- with the generalisation adjustment C > 0 (config ``generalization_adjustment``, a number or one per group; the
  reference applies it only when every group's C is > 0): ℓ̃_g = ℓ_g + C_g / √n_g, n_g the group's count in
  the training split; else ℓ̃_g = ℓ_g;
- q_g ← q_g · exp(η_q · ℓ̃_g) on detached values, then q ← q / Σ q (q starts uniform); η_q = ``robust_step_size``;
- objective Σ_g q_g ℓ_g with the updated q, SGD step (the gradient of the reference's Σ_g q_g ℓ̃_g: the
  adjustment is a constant).

``reweight_groups: true`` draws each epoch's batches with replacement, sample i with weight N / n_{g_i}
(every group equally likely; the reference's ``WeightedRandomSampler``), steps × batch_size draws per epoch (the
reference draws N, its last batch smaller; here N is rounded up to whole batches).
Logged: ``q_<group>`` per group, the robust objective as the reference logs it, Σ_g q_g ℓ̃_g with the adjusted
losses (``robust_loss``), and the plain mean loss (``loss``).
"""

from __future__ import annotations

import torch

from debias.losses import per_example_loss
from debias.methods.erm import ERM
from debias.methods.registry import register


def group_mean_losses(losses: torch.Tensor, group: torch.Tensor, num_groups: int) -> torch.Tensor:
    """ℓ_g = mean of ``losses`` over the samples of group g; 0 where the group is absent (the reference's guard)."""
    one_hot = (group[None, :] == torch.arange(num_groups, device=group.device)[:, None]).to(losses.dtype)
    count = one_hot.sum(1)
    return (one_hot @ losses) / (count + (count == 0).to(losses.dtype))


def adjustment(c, group_counts: torch.Tensor) -> torch.Tensor:
    """C_g / √n_g if every C_g > 0, else zeros (the reference's ``if np.all(self.adj > 0)``)."""
    c = torch.as_tensor(c, dtype=torch.float64).expand(group_counts.shape).to(group_counts.device)
    if not bool((c > 0).all()):
        return torch.zeros_like(group_counts, dtype=torch.float64)
    return c / group_counts.double().clamp(min=1).sqrt()


def update_q(q: torch.Tensor, adjusted_group_losses: torch.Tensor, step_size: float) -> torch.Tensor:
    """q · exp(η · ℓ̃) renormalised to sum 1 (exponentiated gradient ascent on the simplex)."""
    q = q * torch.exp(step_size * adjusted_group_losses.detach().to(q.dtype))
    return q / q.sum()


@register("groupdro")
class GroupDRO(ERM):
    needs = ("x", "y", "group")
    hparams = ERM.hparams + ("robust_step_size", "generalization_adjustment", "reweight_groups")
    optional_hparams = ERM.optional_hparams + ("num_groups",)

    def __init__(self, backbone, hp):
        super().__init__(backbone, hp)
        self.q: torch.Tensor | None = None
        self.group_counts: torch.Tensor | None = None
        if hp["reweight_groups"]:
            self.batch_sampler = self.group_balanced_batches

    def attach(self, splits):
        group = splits["train"]["group"]
        if bool((group < 0).any()):
            raise ValueError("groupdro: the training split has samples without a group (group id < 0)")
        num_groups = int(self.hp.get("num_groups", int(group.max()) + 1))
        self.group_counts = torch.bincount(group.long(), minlength=num_groups).to(group.device)
        self.q = torch.full((num_groups,), 1.0 / num_groups, device=group.device)  # a resumed run loads its own
        self.sample_weight = (group.numel() / self.group_counts.double()[group.long()]).cpu()
        # once, not at every step (its host-to-device copy and `if` would make the host wait for the GPU)
        self.adjustment = adjustment(self.hp["generalization_adjustment"], self.group_counts)

    def group_balanced_batches(self, n: int, batch_size: int, steps: int, gen: torch.Generator):
        idx = torch.multinomial(self.sample_weight, steps * batch_size, replacement=True, generator=gen)
        yield from idx.split(batch_size)

    def update(self, batch):
        self.zero_grad()
        losses = per_example_loss(self.logits(batch["x"]), batch["y"])
        group_losses = group_mean_losses(losses, batch["group"].long(), self.q.numel())
        adj = self.adjustment.to(group_losses.dtype)
        self.q = update_q(self.q, group_losses + adj, self.hp["robust_step_size"])
        q = self.q.to(group_losses.dtype)
        robust = group_losses @ q  # backpropagated: the reference's Σ q ℓ̃ less a constant, the same gradient
        robust.backward()
        self.opt.step()
        logs = {"loss": losses.mean().detach(), "robust_loss": (robust + adj @ q).detach()}  # Σ q ℓ̃
        logs.update({f"q_g{g}": self.q[g] for g in range(self.q.numel())})
        return logs

    def state_dict(self):
        return {**super().state_dict(), "q": self.q}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.q = state["q"].to(self.q.device if self.q is not None else state["q"].device)
