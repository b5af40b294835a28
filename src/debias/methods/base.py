"""The method contract: ``update(batch) -> dict of logged scalars`` and ``predict(x) -> logits``.

A method owns its modules, optimisers and learning-rate schedules, built from a ``Backbone`` and the
hyperparameters of the config. It never knows which dataset it runs on: it reads only the batch fields it
declares in ``needs``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

from debias.models import Backbone

# keys of a row's config entry that the engine reads, whatever the method: the run's length, its batch size, the
# model-selection rules, the row it starts from, and the registered class
RUN_KEYS = ("method", "epochs", "steps", "batch_size", "select", "init_from")


class Method(ABC):
    name = "?"
    needs: tuple[str, ...] = ("x", "y")  # batch fields the method reads
    # the label kinds its losses take (``debias.tasks``: single = a class index, multi = a multi-hot row)
    label_kinds: tuple[str, ...] = ("single",)
    # splits besides train that the method reads in ``attach`` (e.g. l2rw's clean meta set from val)
    needs_splits: tuple[str, ...] = ()
    # keys every config entry of the method must have; besides, `epochs` or `steps` (the run's length) and
    # optionally `lr_step_epochs` + `lr_gamma` (x gamma every k epochs), `lr_halve_second_half`, `batch_size`
    hparams: tuple[str, ...] = ("lr", "momentum", "weight_decay")
    # keys the method reads where they are given (besides ``RUN_KEYS``); any other key of its entry is refused
    optional_hparams: tuple[str, ...] = ("lr_step_epochs", "lr_gamma", "lr_halve_second_half")
    # runs trained at once as one batched model (``debias.batched``); every loss is then reduced per run
    # (``losses.member_mean``) and is a vector of ``members`` values. A class whose ``update`` does so says
    # ``batchable = True`` (``batched.batchable``).
    members: int = 1
    batchable = False

    def __init__(self, backbone: Backbone, hp: dict[str, Any]):
        self.hp = dict(hp)
        self.modules = nn.ModuleDict()
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}

    @classmethod
    def min_epochs(cls, hp: dict[str, Any]) -> int:
        """The fewest epochs with one its ``selectable`` allows (a method with a warm-up needs more than it)."""
        return 1

    @classmethod
    def required_fields(cls, hp: dict[str, Any]) -> tuple[str, ...]:
        """Batch fields the hyperparameters ``hp`` add to ``needs`` (e.g. a pairing by group)."""
        return ()

    # -- building blocks ------------------------------------------------------------------------------
    def make_sgd(self, key: str, params, lr: float | None = None) -> torch.optim.Optimizer:
        """Momentum SGD; with ``lr_step_epochs`` and ``lr_gamma`` in the config, the lr is multiplied by gamma
        every k epochs, else it stays constant (up to ``lr_halve_second_half``)."""
        hp = self.hp
        opt = torch.optim.SGD(
            params, lr=hp["lr"] if lr is None else lr, momentum=hp["momentum"], weight_decay=hp["weight_decay"]
        )
        self.optimizers[key] = opt
        if "lr_step_epochs" in hp:
            self.schedulers[key] = torch.optim.lr_scheduler.StepLR(opt, hp["lr_step_epochs"], hp["lr_gamma"])
        return opt

    @staticmethod
    def backward(loss: torch.Tensor) -> None:
        """``loss.backward()``; a batched run's per-run losses are summed first (each run's parameters then get
        the gradient of their own loss alone)."""
        (loss if loss.dim() == 0 else loss.sum()).backward()

    def zero_grad(self) -> None:
        # zero-filled, not None: parameters outside a pass still get momentum and weight decay, as in
        # the PyTorch of the reference code (protocol sheet C11)
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=False)

    # -- the contract ---------------------------------------------------------------------------------
    @abstractmethod
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One training step on ``batch``; returns the scalars to log."""

    @abstractmethod
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for inputs ``x``."""

    # -- hooks the engine calls -----------------------------------------------------------------------
    def attach(self, splits: dict[str, dict[str, torch.Tensor]]) -> None:
        """Called once before training with every split (e.g. to read class frequencies or a validation set)."""

    def attach_batch(self, members: list["Method"]) -> None:
        """A batched method (``debias.batched``) is never attached itself: each run's own method is attached to
        its own splits, then this gathers from them what ``update`` reads (e.g. per-run class weights). A class
        that overrides ``attach`` must override this too to be batchable."""

    batch_sampler = None  # or a method (n, batch_size, steps, generator) -> iterator of index tensors

    def on_epoch_start(self, epoch: int, total_epochs: int, steps_per_epoch: int) -> dict[str, float]:
        """Called before each epoch; returns scalars to log for the epoch (e.g. a ramp value).

        With ``lr_halve_second_half``, every optimiser runs at half its lr from the first epoch that starts at or
        after the middle of training (the FairFace paper's stated schedule)."""
        if not self.hp.get("lr_halve_second_half"):
            return {}
        factor = 0.5 if epoch >= total_epochs / 2 else 1.0
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = self.hp["lr"] * factor
        return {"lr": self.hp["lr"] * factor}

    def selectable(self, epoch: int) -> bool:
        """Whether the weights after ``epoch`` (1-based) may be chosen by a validation rule. A method with a
        warm-up phase says no for it: the warm-up's weights are not yet the method's."""
        return True

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        """Called after each epoch's steps; returns scalars to log for the epoch (e.g. a distribution over the
        training set, once per epoch rather than at every step)."""
        for sched in self.schedulers.values():
            sched.step()
        return {}

    def train(self, mode: bool = True) -> None:
        self.modules.train(mode)

    def to(self, device: torch.device) -> "Method":
        self.modules.to(device)
        return self

    COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune-no-cudagraphs")

    def compile(self, mode: str) -> "Method":
        """Compile every module's forward in place (``nn.Module.compile``: parameter names and state dicts stay
        as they are, so saved states and ``init_from`` are unaffected); ``none`` leaves the method eager."""
        if mode not in self.COMPILE_MODES:
            raise ValueError(f"compile mode {mode!r}; expected one of {', '.join(self.COMPILE_MODES)}")
        if mode != "none":
            for module in self.modules.values():
                module.compile(mode=mode)
        return self

    # -- state ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "modules": self.modules.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.modules.load_state_dict(state["modules"])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])

    def model_state(self) -> dict[str, Any]:
        """The weights another run may start from (``init_from`` in the config)."""
        return self.modules.state_dict()

    def init_from(self, model_state: dict[str, Any]) -> None:
        """Start from another run's weights: every module present in both is loaded; optimiser state stays fresh."""
        own = self.modules.state_dict()
        shared = {k: v for k, v in model_state.items() if k in own}
        if not shared:
            raise ValueError(f"{self.name}: the initial model shares no weights with this method's modules")
        missing = [k for k in own if k not in shared and k.split(".")[0] in {s.split(".")[0] for s in shared}]
        if missing:
            raise ValueError(f"{self.name}: the initial model lacks {missing[:5]}")
        self.modules.load_state_dict(shared, strict=False)
