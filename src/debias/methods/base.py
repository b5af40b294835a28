"""The method contract: ``update(batch) -> dict of logged scalars`` and ``predict(x) -> logits``.

A method owns its modules, optimisers and learning-rate schedules, built from a ``Backbone`` and the
hyperparameters of the config. It never knows which dataset it runs on: it reads only the batch fields it
declares in ``needs``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from debias.models import Backbone


class Method:
    name = "?"
    needs: tuple[str, ...] = ("x", "y")  # batch fields the method reads
    hparams: tuple[str, ...] = ("epochs", "lr", "momentum", "weight_decay", "lr_step_epochs", "lr_gamma")

    def __init__(self, backbone: Backbone, hp: dict[str, Any]):
        self.hp = dict(hp)
        self.modules = nn.ModuleDict()
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}

    # -- building blocks ------------------------------------------------------------------------------
    def make_sgd(self, key: str, params, lr: float | None = None) -> torch.optim.Optimizer:
        """Momentum SGD with the step schedule of the config (``lr_step_epochs``, ``lr_gamma``)."""
        hp = self.hp
        opt = torch.optim.SGD(
            params, lr=hp["lr"] if lr is None else lr, momentum=hp["momentum"], weight_decay=hp["weight_decay"]
        )
        self.optimizers[key] = opt
        self.schedulers[key] = torch.optim.lr_scheduler.StepLR(opt, hp["lr_step_epochs"], hp["lr_gamma"])
        return opt

    def zero_grad(self) -> None:
        # zero-filled, not None: parameters outside a pass still get momentum and weight decay, as in
        # the PyTorch of the reference code (protocol sheet C11)
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=False)

    # -- the contract ---------------------------------------------------------------------------------
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement update()")

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement predict()")

    # -- hooks the engine calls -----------------------------------------------------------------------
    def on_epoch_start(self, epoch: int, total_epochs: int, steps_per_epoch: int) -> dict[str, float]:
        """Called before each epoch; returns scalars to log for the epoch (e.g. a ramp value)."""
        return {}

    def on_epoch_end(self, epoch: int) -> None:
        for sched in self.schedulers.values():
            sched.step()

    def train(self, mode: bool = True) -> None:
        self.modules.train(mode)

    def to(self, device: torch.device) -> "Method":
        self.modules.to(device)
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
