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


def test_l2rw_trains_eagerly_whatever_compile_says(capsys):
    """torch.compile cannot take l2rw's double backward (it failed at the first step): l2rw leaves its modules
    eager and says so in the job log, and steps."""
    from debias.models import l2rw_lenet_backbone

    torch.manual_seed(0)
    m = methods.get("l2rw")(l2rw_lenet_backbone(1, 1, 4, 28), dict(steps=2, lr=0.01, momentum=0.9,
                                                                    weight_decay=0.0, meta_lr=0.01))
    g = torch.Generator().manual_seed(1)
    m.attach({"train": {"x": torch.rand(8, 1, 28, 28, generator=g), "y": torch.arange(8) % 2},
              "val": {"x": torch.rand(4, 1, 28, 28, generator=g), "y": torch.arange(4) % 2}})
    m.compile("default")
    assert not any(getattr(mod, "_compiled_call_impl", None) is not None for mod in m.modules.values())
    assert "l2rw: train.compile 'default' not applied" in capsys.readouterr().err
    logs = m.update({"x": torch.rand(8, 1, 28, 28, generator=g), "y": torch.arange(8) % 2})
    assert torch.isfinite(logs["loss"]).all()
