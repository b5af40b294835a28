import math

import numpy as np
import pytest
import torch

from debias import methods
from debias.methods.adversarial import bias_ce, grad_reverse, grl_ramp, mean_ce_to_uniform, mean_neg_entropy
from debias.methods.erm import to_gray
from debias.models import colored_mnist_backbone

HP = dict(epochs=1, lr=0.01, momentum=0.9, weight_decay=5e-4, lr_step_epochs=40, lr_gamma=0.1, alpha=0.01,
          entropy_weight=0.01, grl_factor=0.1, ramp_variable="epoch")


def backbone(width=4):
    return colored_mnist_backbone(width, 10, 8, [0.5] * 3, [0.25] * 3)


def batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.rand(n, 3, 28, 28, generator=g), "y": torch.randint(0, 10, (n,), generator=g),
            "bias": torch.randint(0, 8, (n, 3, 14, 14), generator=g)}


def test_gradient_reversal_sign_and_scale():
    x = torch.randn(5, 3, requires_grad=True)
    w = torch.randn(5, 3)
    y = grad_reverse(x, 0.3)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    torch.testing.assert_close(x.grad, -0.3 * w)


def test_ramp_values():
    assert grl_ramp(0) == 0
    for gamma, expected in [(1, 0.462), (2, 0.762), (3, 0.905), (5, 0.987)]:
        assert abs(grl_ramp(gamma) - expected) < 1e-3


def test_negative_entropy_against_numpy_and_finite_when_saturated():
    logits = torch.randn(2, 8, 3, 4, 4, dtype=torch.float64)
    p = np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(axis=1, keepdims=True)
    expected = (p * np.log(p)).sum(axis=1).mean()
    assert abs(mean_neg_entropy(logits).item() - expected) < 1e-12
    saturated = torch.zeros(2, 8, 3, 4, 4)
    saturated[:, 0] = 1e4
    saturated.requires_grad_(True)
    value = mean_neg_entropy(saturated)
    value.backward()
    assert value.item() == 0.0 and torch.isfinite(saturated.grad).all()
    uniform = torch.zeros(1, 8, 3, 2, 2)
    assert abs(mean_neg_entropy(uniform).item() + math.log(8)) < 1e-6
    assert abs(mean_ce_to_uniform(uniform).item() - math.log(8)) < 1e-6


def test_bias_ce_sums_per_channel_means_and_ignores_255():
    logits = torch.randn(3, 8, 3, 2, 2, dtype=torch.float64)
    target = torch.randint(0, 8, (3, 3, 2, 2))
    target[0, 1] = 255
    target[:, 2] = 255  # a channel with no valid pixel contributes 0
    lp = torch.log_softmax(logits, dim=1).numpy()
    total = 0.0
    for c in range(2):
        vals = [-lp[b, target[b, c, i, j], c, i, j] for b in range(3) for i in range(2) for j in range(2)
                if target[b, c, i, j] != 255]
        total += np.mean(vals)
    assert abs(bias_ce(logits, target).item() - total) < 1e-12


def test_gray_uses_luma():
    x = torch.rand(2, 3, 4, 4)
    g = to_gray(x)
    expected = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    for c in range(3):
        torch.testing.assert_close(g[:, c], expected)


def test_unknown_method_lists_known_names():
    with pytest.raises(KeyError, match="known methods: baseline, blindeye, cutmix, erm, fisher_flat, gray, groupdro, hardmining, l2rw, lnl, lnl_adaptive, mixup, nomix, proportion, random, resample"):
        methods.get("nope")


@pytest.mark.parametrize("name", ["baseline", "gray", "blindeye", "lnl", "lnl_adaptive"])
def test_every_method_steps_and_predicts(name):
    torch.manual_seed(0)
    m = methods.get(name)(backbone(), HP)
    m.on_epoch_start(1, 10, 5)
    logs = m.update(batch())
    assert logs and all(torch.isfinite(v) for v in logs.values())
    assert m.predict(batch()["x"]).shape == (6, 10)


def test_lnl_second_pass_gives_features_the_reversed_bias_gradient():
    """After pass 2, f's gradient is -mu times the gradient of the bias loss (computed without a GRL)."""
    torch.manual_seed(0)
    hp = dict(HP, entropy_weight=0.0, grl_factor=0.7)
    m = methods.get("lnl")(backbone(), hp)
    b = batch()
    f, h = m.modules["f"], m.modules["h"]
    steps = []
    m.opt_fg.step = lambda: steps.append({k: p.grad.clone() for k, p in f.named_parameters()})
    m.opt_h.step = lambda: None
    m.update(b)
    reference = backbone()  # same weights: reference gradient of the bias loss w.r.t. f, no reversal
    reference.features.load_state_dict(f.state_dict())
    heads = reference.make_bias_head()
    heads.load_state_dict(h.state_dict())
    # BN running stats moved twice in m (two passes); the train-mode forward uses batch statistics only
    loss = bias_ce(heads(reference.features(b["x"])), b["bias"])
    grads = torch.autograd.grad(loss, list(reference.features.parameters()))
    for (name, _), g in zip(f.named_parameters(), grads):
        torch.testing.assert_close(steps[1][name], -0.7 * g, rtol=1e-4, atol=1e-6)


def test_adaptive_ramp_scales_the_reversal():
    m = methods.get("lnl_adaptive")(backbone(), HP)
    assert m.on_epoch_start(0, 10, 5)["grl_ramp"] == 0.0 and m.grl_factor() == 0.0
    m.on_epoch_start(2, 10, 5)
    assert abs(m.grl_factor() - 0.1 * grl_ramp(2)) < 1e-12
    p = methods.get("lnl_adaptive")(backbone(), dict(HP, ramp_variable="progress"))
    p.on_epoch_start(1, 10, 5)
    assert abs(p.gamma - 1.0) < 1e-12
    p.update(batch())
    assert abs(p.gamma - 1.2) < 1e-12  # 10 / (10 epochs * 5 steps) per step


def test_init_from_loads_shared_weights_only():
    base = methods.get("baseline")(backbone(), HP)
    lnl = methods.get("lnl")(backbone(), HP)
    h_before = {k: v.clone() for k, v in lnl.modules["h"].state_dict().items()}
    lnl.init_from(base.model_state())
    for k, v in base.modules["f"].state_dict().items():
        assert torch.equal(lnl.modules["f"].state_dict()[k], v)
    for k, v in lnl.modules["h"].state_dict().items():
        assert torch.equal(v, h_before[k])


@pytest.mark.parametrize("name", methods.names())
def test_lr_halve_second_half_applies_to_every_method(name):
    """lr 0.01 in epochs 0 and 1 of 4, 0.005 from epoch 2 (= 4 / 2) on, in every optimiser of every method."""
    hp = dict(HP, lr_halve_second_half=True, ties="reference", meta_lr=1.0, loss="ce", train_layers="all",
              alpha=1.0, pairing="random", label_weights="area", robust_step_size=0.01,
              generalization_adjustment=0.0, reweight_groups=False, trace="last_layer", multipliers="per_sample",
              dual_step_size=0.01, epsilon_percentile=50, warmup_epochs=1, epsilon=1.0)
    del hp["lr_step_epochs"], hp["lr_gamma"]
    m = methods.get(name)(backbone(), hp)
    for epoch, lr in [(0, 0.01), (1, 0.01), (2, 0.005), (3, 0.005)]:
        logs = m.on_epoch_start(epoch, 4, 5)
        assert logs["lr"] == lr
        lrs = [group["lr"] for opt in m.optimizers.values() for group in opt.param_groups]
        assert lrs and all(x == lr for x in lrs)
