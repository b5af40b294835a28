"""Several runs of one table row trained as one batched model: N networks of the same architecture, their
parameters stacked along a leading member axis, one ``torch.func.vmap`` forward for all of them.

For the small networks (colored MNIST) a training step on a GPU is bound by kernel launches, not arithmetic;
a batch of N runs makes the same launches as one run. The numbers stay those of N separate runs:

- every member is built exactly as an unbatched run (seeded, initialised, ``init_from`` loaded), then its
  parameters and buffers are stacked (``StackedModule``); batch norm updates each member's running statistics;
- a batch is the N members' own batches one after another (each from its own data and its own (seed, epoch)
  sample order), and the method reduces every loss per member (``Method.members``; ``losses.member_mean``),
  so member n's gradient is the gradient of its own loss alone;
- momentum SGD with weight decay acts elementwise, so one optimiser over the stacked parameters steps every
  member as its own optimiser would, and the learning-rate schedule is the row's, shared.

Only methods whose update reduces per member can be batched (``batchable``); the member outputs (model.pt,
metrics.json) are the same files an unbatched run writes. Numbers agree with unbatched runs to float
tolerance, not bit for bit: the stacked convolutions run as grouped convolutions.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from debias.engine import RunSpec, epoch_indices, epoch_order, train_runs
from debias.methods.base import Method
from debias.stacked import StackedModule

log = logging.getLogger(__name__)


def batchable(cls: type[Method]) -> bool:
    """Whether ``cls`` can train batched: the class that defines its ``update`` says so (``batchable = True``), no
    class on the way opts out (``batchable = False``), and if it reads the splits before training (``attach``) it
    also gathers that per run (``attach_batch``). Its own batch sampler, if any, runs per run."""
    owner = next(c for c in cls.__mro__ if "update" in c.__dict__)
    attach_ok = cls.attach is Method.attach or cls.attach_batch is not Method.attach_batch
    return bool(owner.__dict__.get("batchable", False)) and bool(cls.batchable) and attach_ok


def stack_methods(members: list[Method], fresh: Method) -> Method:
    """``fresh`` (an unused instance of the members' class and hyperparameters) turned into the batched method:
    each of its modules replaced by the members' modules stacked, its optimisers pointed at the stacked
    parameters (their state is empty: the members' optimisers have not stepped)."""
    if any(opt.state for m in members for opt in m.optimizers.values()):
        raise ValueError("batched runs: members must be stacked before any optimiser step")
    replaced: dict[int, nn.Parameter] = {}
    for key in list(fresh.modules.keys()):
        stacked = StackedModule([m.modules[key] for m in members])  # on the members' device
        by_name = stacked.stacked_parameters()
        for name, p in fresh.modules[key].named_parameters():
            replaced[id(p)] = by_name[name]
        fresh.modules[key] = stacked
    for opt in fresh.optimizers.values():
        for group in opt.param_groups:
            group["params"] = [replaced[id(p)] for p in group["params"]]
    fresh.members = len(members)
    return fresh


def attach(batched: Method, members: list[Method], member_splits: list[dict[str, dict[str, torch.Tensor]]]) -> None:
    """``Method.attach`` of a batched method: each run's own method attached to its own splits, then what
    ``update`` reads gathered from them (``Method.attach_batch``)."""
    for member, splits in zip(members, member_splits):
        member.attach(splits)
    batched.attach_batch(members)


def load_member(batched: Method, member: Method, i: int) -> Method:
    """Copy member i's current weights (and buffers) from ``batched`` into ``member``; returns ``member``."""
    for key, stacked in batched.modules.items():
        member.modules[key].load_state_dict(stacked.member_state(i))
    return member


class StackedSplits:
    """The members' training splits, each stored once however many members share it (the seeds of one σ²):
    ``batch(idx)`` gathers member i's rows ``idx[i]`` from its own split, all members in one indexing."""

    def __init__(self, member_splits: list[dict[str, torch.Tensor]]):
        unique: list[dict[str, torch.Tensor]] = []
        which = []
        for s in member_splits:
            pos = next((j for j, u in enumerate(unique) if u is s), None)
            if pos is None:
                unique.append(s)
                pos = len(unique) - 1
            which.append(pos)
        keys = sorted(unique[0])
        sizes = {u["y"].shape[0] for u in unique}
        if any(sorted(u) != keys for u in unique) or len(sizes) != 1:
            raise ValueError("batched runs: the members' training splits differ in fields or size")
        self.n = sizes.pop()
        device = unique[0]["y"].device
        self.fields = {k: torch.stack([u[k] for u in unique]) for k in keys}
        self.which = torch.tensor(which, device=device)[:, None]

    def batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """idx [N, b] -> every field [N * b, ...]; uint8 images to float in [0, 1] (as ``engine.make_batch``)."""
        out = {}
        for k, v in self.fields.items():
            rows = v[self.which, idx]
            out[k] = rows.reshape(-1, *rows.shape[2:])
        if out["x"].dtype == torch.uint8:
            out["x"] = out["x"].float().div_(255.0)
        return out


def epoch_member_indices(members: list[Method], specs: list[RunSpec], n: int, batch_size: int, epoch: int,
                         steps: int, device):
    """Per step, [N, batch_size] indices: row i the batch run i draws alone (``engine.epoch_indices``: its own
    sampler, or its own (seed, epoch) order)."""
    if members[0].batch_sampler is None:  # every order in one host-to-device copy
        order = torch.stack([epoch_order(n, s.seed, epoch)[: steps * batch_size] for s in specs]).to(device)
        for start in range(0, order.shape[1], batch_size):
            yield order[:, start : start + batch_size]
        return
    streams = [epoch_indices(m, n, batch_size, s.seed, epoch, steps, device) for m, s in zip(members, specs)]
    yield from (torch.stack(step) for step in zip(*streams))


class BatchedRuns:
    """N runs trained as one batched method, as the engine's loop sees them (``engine.train_runs``; the one-run
    case is ``engine.SingleRun``)."""

    def __init__(self, batched: Method, members: list[Method], member_splits, specs: list[RunSpec]):
        self.batched, self.members, self.member_splits, self.specs = batched, members, member_splits, specs
        self.train = StackedSplits([s["train"] for s in member_splits])
        self.n = self.train.n
        self.device = self.train.which.device

    @property
    def hooks(self) -> Method:
        return self.batched

    def attach(self) -> None:
        attach(self.batched, self.members, self.member_splits)

    def batches(self, epoch: int, steps: int):
        for idx in epoch_member_indices(self.members, self.specs, self.n, self.specs[0].batch_size, epoch, steps,
                                        self.device):
            yield self.train.batch(idx)

    def update(self, batch):
        return self.batched.update(batch)

    def member(self, i: int) -> Method:
        """Run i's own method, holding its current weights."""
        return load_member(self.batched, self.members[i], i)


def fit_batched(batched: Method, members: list[Method], member_splits: list[dict[str, dict[str, torch.Tensor]]],
                specs: list[RunSpec], state_path, fingerprint: str) -> list[dict[str, Any]]:
    """Train the runs of ``specs`` as one batched method through the engine's loop; the same results per run as
    ``engine.fit`` (selection by ``last`` only), each member's metrics from ``members[i]`` holding its final
    weights. The resumable state of the whole batch lives in ``state_path``."""
    first = specs[0]
    shared = ("epochs", "max_steps", "batch_size", "eval_every", "select", "channels_last", "eval_splits")
    for s in specs[1:]:
        diff = [k for k in shared if getattr(s, k) != getattr(first, k)]
        if diff:
            raise ValueError(f"batched runs {first.run_id} and {s.run_id} differ in {diff}")
    if first.select != ("last",):
        raise ValueError(f"batched runs select by 'last' only; run {first.run_id} selects by {list(first.select)}")
    return train_runs(BatchedRuns(batched, members, member_splits, specs), member_splits, specs, state_path,
                      fingerprint)
