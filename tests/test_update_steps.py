"""One ``update()`` call of each method against the same step computed by hand.

Plain SGD (momentum 0, weight decay 0; the adversarial methods also with momentum and weight decay), float64.
The expected parameter change is computed with separate autograd calls on copies of the modules (or from
per-example gradients), with the losses written out here, not taken from the method code; the actual change
is the difference of the method's parameters.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from debias import methods
from debias.methods.reweighting import _Reweighted
from debias.models import Backbone, colored_mnist_backbone

LR = 0.1
SGD = dict(epochs=1, steps=1, lr=LR, momentum=0.0, weight_decay=0.0)


def params(modules: nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in modules.named_parameters()}


def change(modules: nn.Module, before: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v - before[k] for k, v in params(modules).items()}


def assert_steps_equal(actual, expected):
    """Per parameter, to float64 precision relative to the step."""
    assert set(actual) == set(expected)
    for k in expected:
        torch.testing.assert_close(actual[k], expected[k], rtol=1e-7, atol=1e-12,
                                   msg=lambda text, k=k: f"{k}: {text}")


# --- adversarial methods (colored-MNIST network: f with BN, g, h with BN) -----------------------------------

def colored_batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.rand(n, 3, 28, 28, generator=g, dtype=torch.float64),
            "y": torch.randint(0, 10, (n,), generator=g),
            "bias": torch.randint(0, 8, (n, 3, 14, 14), generator=g)}


def adversarial_update(name, batch, **hp):
    """(the parameter change of one ``update(batch)``, a copy of f, g, h as they were before it)."""
    torch.manual_seed(0)
    m = methods.get(name)(colored_mnist_backbone(2, 10, 8, [0.5] * 3, [0.25] * 3), dict(SGD, **hp))
    m.modules.double()
    ref = copy.deepcopy(m.modules)
    before = params(m.modules)
    m.update(batch)
    return change(m.modules, before), ref


def task_ce(logits, y):
    """-log softmax(logits)[y], batch mean."""
    return -torch.log_softmax(logits, dim=1)[torch.arange(len(y)), y].mean()


def colour_ce(h_out, bias):
    """h_out [B, 8, 3, H, W]: per colour channel the mean over batch and positions of -log q[bias], summed
    over the 3 channels (no ignored pixels in these batches)."""
    logq = torch.log_softmax(h_out, dim=1).gather(1, bias.unsqueeze(1)).squeeze(1)  # [B, 3, H, W]
    return -logq.mean(dim=(0, 2, 3)).sum()


def grads(loss, module):
    names = [k for k, _ in module.named_parameters()]
    return dict(zip(names, torch.autograd.grad(loss, list(module.parameters()), retain_graph=True)))


def zeros(module):
    return {k: torch.zeros_like(p) for k, p in module.named_parameters()}


class HandSGD:
    """torch.optim.SGD's update written out (dampening 0, no Nesterov): d = grad + wd * p; buf = d at a
    parameter's first step, else momentum * buf + d; p -= lr * buf."""

    def __init__(self, momentum, weight_decay):
        self.momentum, self.wd, self.buf = momentum, weight_decay, {}

    def step(self, module, grad, sign=1.0):
        with torch.no_grad():
            for k, p in module.named_parameters():
                d = sign * grad[k] + self.wd * p
                key = (id(module), k)
                self.buf[key] = d.clone() if key not in self.buf else self.momentum * self.buf[key] + d
                p.sub_(LR * self.buf[key])


# plain SGD, and with momentum and weight decay: parameters with zero-filled gradients then still move
# (the reference code's PyTorch, protocol sheet C11), which the hand steps below reproduce
OPTIMISER = pytest.mark.parametrize("momentum, wd", [(0.0, 0.0), (0.9, 0.01)], ids=["plain", "momentum-wd"])


@OPTIMISER
def test_lnl_update_is_the_two_hand_computed_sgd_steps(momentum, wd):
    """(1) f, g step on grad[CE + lambda * sum_k q_k log q_k] (h not stepped); (2) h steps on grad_h[colour CE],
    f on -mu * grad_f[colour CE] (reversed), g on a zero gradient; the second step at the weights after the first."""
    lam, mu = 0.5, 0.7
    b = colored_batch()
    actual, ref = adversarial_update("lnl", b, entropy_weight=lam, grl_factor=mu, momentum=momentum, weight_decay=wd)
    before = params(ref)
    f, g, h = ref["f"], ref["g"], ref["h"]
    sgd = HandSGD(momentum, wd)
    feat = f(b["x"])
    q = torch.softmax(h(feat), dim=1)
    loss1 = task_ce(g(feat), b["y"]) + lam * (q * torch.log(q)).sum(dim=1).mean()
    g1f, g1g = grads(loss1, f), grads(loss1, g)
    sgd.step(f, g1f)
    sgd.step(g, g1g)
    loss2 = colour_ce(h(f(b["x"])), b["bias"])
    g2f, g2h = grads(loss2, f), grads(loss2, h)
    sgd.step(f, g2f, sign=-mu)
    sgd.step(g, zeros(g))
    sgd.step(h, g2h)
    expected = change(ref, before)
    assert_steps_equal(actual, expected)


@OPTIMISER
def test_blindeye_update_is_the_two_hand_computed_sgd_steps(momentum, wd):
    """(a) h steps on grad_h[colour CE of h(f(x))] (f, g not stepped); (b) with that h, f and g step on
    grad[CE + alpha * CE(uniform, h(f(x)))], the confusion gradient flowing through h into f; h not stepped."""
    alpha = 0.5
    b = colored_batch(seed=1)
    actual, ref = adversarial_update("blindeye", b, alpha=alpha, momentum=momentum, weight_decay=wd)
    before = params(ref)
    f, g, h = ref["f"], ref["g"], ref["h"]
    sgd = HandSGD(momentum, wd)
    feat = f(b["x"])
    sgd.step(h, grads(colour_ce(h(feat.detach()), b["bias"]), h))
    confusion = -torch.log_softmax(h(feat), dim=1).mean()  # mean over the 8 bins and everything else
    loss = task_ce(g(feat), b["y"]) + alpha * confusion
    gf, gg = grads(loss, f), grads(loss, g)
    sgd.step(f, gf)
    sgd.step(g, gg)
    expected = change(ref, before)
    assert_steps_equal(actual, expected)
    assert any(expected[k].abs().max() > 0 for k in expected if k.startswith("f."))  # f does learn here


# --- reweighting methods: step = -lr * sum_i w_i grad l_i ------------------------------------------------------

def small_backbone(out=1):
    torch.manual_seed(0)
    return Backbone(nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.Tanh()), nn.Linear(5, out))


# 16 training labels: 4 of class 0 (minority), 12 of class 1 (majority)
Y = torch.tensor([1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1])


def reweighting_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 1, 3, 4, generator=g, dtype=torch.float64)
    vx = torch.randn(6, 1, 3, 4, generator=g, dtype=torch.float64)
    return {"train": {"x": x, "y": Y}, "val": {"x": vx, "y": torch.arange(6) % 2}}


def bce(logit, y):
    """Sigmoid cross-entropy of one logit, written out: softplus(z) - y * z."""
    return F.softplus(logit) - y * logit


def per_example_grads(model, x, y):
    """One autograd call per example on a copy of the model: list of {name: grad l_i}."""
    model = copy.deepcopy(model)
    out = []
    for i in range(len(y)):
        loss = bce(model(x[i:i + 1])[0, 0], y[i].double())
        out.append(grads(loss, model))
    return out


def mean_grad(model, x, y):
    model = copy.deepcopy(model)
    return grads(bce(model(x)[:, 0], y.double()).mean(), model)


def dot(a, b):
    return sum((a[k] * b[k]).sum() for k in a)


def l2rw_weights_by_hand(model, splits):
    """w_i = max(<grad L_val, grad l_i>, 0) / sum_j max(...) (Ren et al. 2018 at eps = 0, meta lr > 0)."""
    val = mean_grad(model, splits["val"]["x"], splits["val"]["y"])
    d = torch.stack([dot(val, gi) for gi in per_example_grads(model, splits["train"]["x"], splits["train"]["y"])])
    return d.clamp(min=0) / d.clamp(min=0).sum()


# hand-derived weights for Y (4 minority examples at positions 1, 5, 10, 14; 12 majority):
# proportion: inverse frequencies (1/4, 1/12) normalised over the classes -> 0.75 (class 0), 0.25 (class 1)
PROPORTION_W = torch.where(Y == 0, 0.75, 0.25).double()
# hardmining, ties "reference": the 4 minority examples + the first k = 4 majority ones in batch order
# (positions 0, 2, 3, 4), each 1/8
HARDMINING_W = torch.zeros(16, dtype=torch.float64)
HARDMINING_W[[1, 5, 10, 14, 0, 2, 3, 4]] = 1 / 8


@pytest.mark.parametrize("name, extra", [
    ("proportion", {}), ("hardmining", {"ties": "reference"}), ("random", {}),
    ("l2rw", {"meta_lr": 1.0, "meta_gradient": "lookahead"}), ("l2rw", {"meta_lr": 1.0, "meta_gradient": "forward"}),
], ids=["proportion", "hardmining", "random", "l2rw-lookahead", "l2rw-forward"])
def test_reweighted_step_is_lr_times_weighted_sum_of_per_example_gradients(name, extra):
    bb = small_backbone()
    m = methods.get(name)(bb, dict(SGD, **extra))
    m.modules.double()
    splits = reweighting_data()
    m.attach(splits)
    model = nn.Sequential(bb.features, bb.classifier)
    if name == "proportion":
        w = PROPORTION_W
    elif name == "hardmining":
        w = HARDMINING_W
    elif name == "random":  # w = max(z, 0) / sum max(z, 0) with the z the method will draw from its own stream
        z = torch.randn(16, generator=torch.Generator().manual_seed(m.stream_seed)).clamp(min=0)
        w = (z / z.sum()).double()  # float32 like the method's draw, so the two agree to float64 precision
    else:
        w = l2rw_weights_by_hand(model, splits)
    assert (w > 0).sum() >= 2  # (proportion's weights sum to 6 * 0.25 + ... = 6, not 1: the reference's)
    per_ex = per_example_grads(model, splits["train"]["x"], Y)
    expected = {k: -LR * sum(wi * gi[k] for wi, gi in zip(w, per_ex)) for k in per_ex[0]}
    before = params(model)
    m.update(splits["train"])
    assert_steps_equal(change(model, before), expected)


class LossDependentWeights(_Reweighted):
    """Weights softmax(losses), built from the losses' graph: the step must still treat them as constants."""

    def weights(self, batch, losses):
        return torch.softmax(losses, dim=0)


def test_weights_are_held_constant_in_the_step():
    """The update minimises sum_i w_i l_i with w fixed: no gradient through w, even when w carries a graph."""
    bb = small_backbone()
    m = LossDependentWeights(bb, dict(SGD))
    m.modules.double()
    splits = reweighting_data(seed=1)
    model = nn.Sequential(bb.features, bb.classifier)
    with torch.no_grad():
        losses = bce(model(splits["train"]["x"])[:, 0], Y.double())
    w = torch.exp(losses) / torch.exp(losses).sum()
    per_ex = per_example_grads(model, splits["train"]["x"], Y)
    expected = {k: -LR * sum(wi * gi[k] for wi, gi in zip(w, per_ex)) for k in per_ex[0]}
    before = params(model)
    m.update(splits["train"])
    assert_steps_equal(change(model, before), expected)
