"""``StackedModule``: N copies of one network as one module whose parameters are stacked along a new first dimension
and whose forward runs every copy on its own part of the batch (``torch.func.vmap``). The building block of batched
runs (``debias.batched``), below the methods, so a method can recognise one without importing upward."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call, vmap


class StackedModule(nn.Module):
    """N modules of one architecture as one: parameter and buffer ``name`` of member i is row i of the stacked
    tensor. ``forward(x)`` takes the members' inputs one after another along dim 0 (N equal parts) and returns
    their outputs the same way."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        first = members[0]
        for m in members[1:]:
            if [(k, v.shape) for k, v in m.state_dict().items()] != [(k, v.shape) for k, v in first.state_dict().items()]:
                raise ValueError("batched runs: the members' networks differ in architecture")
        self.n = len(members)
        self._param_names = [k for k, _ in first.named_parameters()]
        self._buffer_names = [k for k, _ in first.named_buffers()]
        self._template = [copy.deepcopy(first).to("meta")]  # structure only; in a list: not a submodule
        params = [dict(m.named_parameters()) for m in members]
        buffers = [dict(m.named_buffers()) for m in members]
        for k in self._param_names:
            self.register_parameter(self._key(k), nn.Parameter(torch.stack([p[k].detach() for p in params])))
        for k in self._buffer_names:
            self.register_buffer(self._key(k), torch.stack([b[k] for b in buffers]))

    @staticmethod
    def _key(name: str) -> str:
        return "m__" + name.replace(".", "__")

    @property
    def template(self) -> nn.Module:
        """The members' architecture (on the meta device: no weights of its own); its modules' settings, e.g.
        batch norm's ``track_running_stats``, apply to every member."""
        return self._template[0]

    def stacked_parameters(self) -> dict[str, nn.Parameter]:
        """The member modules' parameter names -> the stacked parameters."""
        return {k: getattr(self, self._key(k)) for k in self._param_names}

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        """Member i's state dict, under the member module's own names."""
        return {k: getattr(self, self._key(k))[i] for k in self._param_names + self._buffer_names}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        template = self.template
        template.train(self.training)
        names = self._param_names + self._buffer_names
        tensors = [getattr(self, self._key(k)) for k in names]

        def one(member_tensors, xi):
            return functional_call(template, dict(zip(names, member_tensors)), (xi,))

        out = vmap(one)(tensors, x.reshape(self.n, -1, *x.shape[1:]))
        return out.reshape(-1, *out.shape[2:])
