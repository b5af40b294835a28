"""``train.compile``: compiled modules give the eager numbers (float tolerance) and keep their state-dict names."""

import pytest
import torch

from debias import methods
from debias.models import colored_mnist_backbone

HP = dict(epochs=1, lr=0.05, momentum=0.9, weight_decay=5e-4, alpha=0.01, entropy_weight=0.01, grl_factor=0.1,
          ramp_variable="epoch")


def steps(name, mode, n=3):
    torch.manual_seed(0)
    m = methods.get(name)(colored_mnist_backbone(4, 10, 8, [0.5] * 3, [0.25] * 3), HP).compile(mode)
    g = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(n):
        batch = {"x": torch.rand(16, 3, 28, 28, generator=g), "y": torch.randint(0, 10, (16,), generator=g),
                 "bias": torch.randint(0, 8, (16, 3, 14, 14), generator=g)}
        losses.append(m.update(batch)["loss"].item())
    compiled = [getattr(mod, "_compiled_call_impl", None) is not None for mod in m.modules.values()]
    assert all(compiled) if mode != "none" else not any(compiled)
    return losses, m.modules.state_dict()


def test_compiled_training_matches_eager():
    name = "baseline"  # lnl compiles the same way; left out: compiling costs CI a minute per method on CPU
    eager_losses, eager_state = steps(name, "none")
    losses, state = steps(name, "default")
    assert list(state) == list(eager_state)  # same names: saved models and init_from work either way
    assert losses == pytest.approx(eager_losses, rel=1e-4, abs=1e-5)
    for k, v in eager_state.items():
        assert torch.allclose(state[k].float(), v.float(), rtol=1e-4, atol=1e-5), k


def test_unknown_mode_is_refused():
    m = methods.get("baseline")(colored_mnist_backbone(4, 10, 8, [0.5] * 3, [0.25] * 3), HP)
    with pytest.raises(ValueError, match="compile mode 'fast'; expected one of none, default"):
        m.compile("fast")
