"""erm, groupdro and fisher_flat against independent computations: hand values on literals, per-sample autograd
loops (one sample and one class at a time), double backpropagation for the gradients."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from debias import methods
from debias.methods.fisher import dual_step, full_trace, last_layer_trace
from debias.methods.groupdro import adjustment, group_mean_losses, update_q
from debias.models import Backbone, small_resnet_backbone

HP = dict(epochs=2, lr=0.05, momentum=0.9, weight_decay=1e-4)
DRO = dict(HP, robust_step_size=0.01, generalization_adjustment=0.0, reweight_groups=False)
FF = dict(HP, trace="last_layer", multipliers="per_sample", dual_step_size=0.5, epsilon_percentile=50,
          warmup_epochs=1)


def mlp(num_outputs=3, bias=True, seed=0):
    """No BatchNorm: a sample's trace does not depend on the rest of its batch."""
    torch.manual_seed(seed)
    return Backbone(nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.Tanh()), nn.Linear(6, num_outputs, bias=bias))


def bn_net(num_outputs=3, seed=0):
    torch.manual_seed(seed)
    return small_resnet_backbone(num_outputs, widths=(2, 4))


def data(n=8, classes=3, groups=4, seed=0, shape=(3, 2, 2)):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(n, *shape, generator=g), "y": torch.randint(0, classes, (n,), generator=g),
            "group": torch.arange(n) % groups, "index": torch.arange(n)}


def head_trace_loop(features, head, x, create_graph=False):
    """Σ_y p_y ‖∇_{W,b} log p_y‖², one sample at a time, one class at a time, with autograd."""
    out = []
    params = list(head.parameters())
    for i in range(x.shape[0]):
        z = head(features(x[i : i + 1]))[0]
        if z.numel() == 1:  # one logit: p(1) = σ(z)
            lp = torch.stack([torch.log(1 - torch.sigmoid(z[0])), torch.log(torch.sigmoid(z[0]))])
        else:
            lp = torch.log_softmax(z, 0)
        t = 0.0
        for y in range(lp.numel()):
            grads = torch.autograd.grad(lp[y], params, retain_graph=True, create_graph=create_graph)
            t = t + lp[y].exp() * sum(gr.pow(2).sum() for gr in grads)
        out.append(t)
    return torch.stack(out)


def full_trace_loop(model, x, create_graph=False):
    """The same over every parameter of ``model``, BN in eval mode."""
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    out = []
    for i in range(x.shape[0]):
        lp = torch.log_softmax(model(x[i : i + 1])[0], 0)
        t = 0.0
        for y in range(lp.numel()):
            grads = torch.autograd.grad(lp[y], params, retain_graph=True, create_graph=create_graph)
            t = t + lp[y].exp() * sum(gr.pow(2).sum() for gr in grads)
        out.append(t)
    model.train()
    return torch.stack(out)


# -- erm ----------------------------------------------------------------------------------------------------


def test_erm_is_baselines_update_on_cpu():
    b = data()
    m_erm, m_base = methods.get("erm")(mlp(), HP), methods.get("baseline")(mlp(), HP)
    m_erm.update(b), m_base.update(b)
    for p, q in zip(m_erm.modules.parameters(), m_base.modules.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_unknown_method_names_the_new_methods():
    with pytest.raises(KeyError, match="known methods: .*erm, fisher_flat, .*groupdro"):
        methods.get("nope")


# -- groupdro -----------------------------------------------------------------------------------------------


def test_group_losses_and_q_update_by_hand():
    losses = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
    group = torch.tensor([0, 0, 1, 3])
    gl = group_mean_losses(losses, group, 4)
    assert gl.tolist() == [1.5, 0.5, 0.0, 3.0]  # group 2 absent: 0
    q = update_q(torch.full((4,), 0.25, dtype=torch.float64), gl, 0.01)
    e = [math.exp(0.015), math.exp(0.005), 1.0, math.exp(0.03)]
    assert np.allclose(q.numpy(), [v / sum(e) for v in e], rtol=0, atol=1e-15)
    # generalisation adjustment C/√n_g with train counts 100, 4, 25, 1 and C = 2: 0.2, 1, 0.4, 2
    adj = adjustment(2.0, torch.tensor([100, 4, 25, 1]))
    assert np.allclose(adj.numpy(), [0.2, 1.0, 0.4, 2.0])
    q = update_q(torch.full((4,), 0.25, dtype=torch.float64), gl + adj, 0.01)
    e = [math.exp(0.01 * 1.7), math.exp(0.01 * 1.5), math.exp(0.01 * 0.4), math.exp(0.01 * 5.0)]
    assert np.allclose(q.numpy(), [v / sum(e) for v in e], rtol=0, atol=1e-15)
    # the reference adjusts only when every group's C is > 0
    assert adjustment([1.0, 0.0, 1.0, 1.0], torch.tensor([100, 4, 25, 1])).abs().sum() == 0


def test_groupdro_step_q_and_gradient():
    """q after one step = numpy update from the pre-step losses; the step's gradient = autograd of Σ q_g ℓ_g."""
    b = data(n=8, groups=3)
    b["group"] = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    train = dict(b, group=torch.tensor([0] * 90 + [1] * 9 + [2]), y=torch.zeros(100, dtype=torch.long))
    hp = dict(DRO, robust_step_size=0.5, generalization_adjustment=1.0)
    m = methods.get("groupdro")(mlp(), hp)
    m.attach({"train": train})
    ref = mlp()
    losses = F.cross_entropy(ref.classifier(ref.features(b["x"])), b["y"], reduction="none")
    ln = losses.detach().double().numpy()
    gl = np.array([ln[:4].mean(), ln[4:6].mean(), ln[6:].mean()])
    adj = 1.0 / np.sqrt([90, 9, 1])
    q = np.exp(0.5 * (gl + adj)) / 3
    q /= q.sum()
    expected = torch.autograd.grad((losses[:4].mean() * q[0] + losses[4:6].mean() * q[1] + losses[6:].mean() * q[2]),
                                   list(ref.features.parameters()) + list(ref.classifier.parameters()))
    seen = []
    m.opt.step = lambda: seen.append([p.grad.clone() for p in m.modules.parameters()])
    logs = m.update(b)
    assert np.allclose(m.q.numpy(), q, rtol=1e-6)
    assert abs(logs["q_g2"].item() - q[2]) < 1e-6
    for got, want in zip(seen[0], expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_groupdro_logs_the_reference_robust_loss_with_the_adjustment_and_the_same_gradient():
    """robust_loss = Σ_g q_g (ℓ_g + C/√n_g) with the updated q (the reference's logged objective); the gradient is
    that of Σ_g q_g ℓ_g whatever C (with q held equal, η_q = 0)."""
    b = data(n=6, groups=2)
    b["group"] = torch.tensor([0, 0, 0, 0, 1, 1])
    train = {"group": torch.tensor([0] * 16 + [1] * 4), "y": torch.zeros(20, dtype=torch.long)}
    ref = mlp()
    ln = F.cross_entropy(ref.classifier(ref.features(b["x"])), b["y"], reduction="none").detach().double().numpy()
    l0, l1 = ln[:4].mean(), ln[4:].mean()
    a0, a1 = 2.0 / 4, 2.0 / 2  # C = 2, train counts 16 and 4
    e0, e1 = math.exp(0.5 * (l0 + a0)), math.exp(0.5 * (l1 + a1))
    q0, q1 = e0 / (e0 + e1), e1 / (e0 + e1)
    m = methods.get("groupdro")(mlp(), dict(DRO, robust_step_size=0.5, generalization_adjustment=2.0))
    m.attach({"train": train})
    logs = m.update(b)
    assert abs(logs["robust_loss"].item() - (q0 * (l0 + a0) + q1 * (l1 + a1))) < 1e-6
    assert abs(logs["loss"].item() - ln.mean()) < 1e-6
    grads = {}
    for c in (0.0, 2.0):
        m = methods.get("groupdro")(mlp(), dict(DRO, robust_step_size=0.0, generalization_adjustment=c))
        m.attach({"train": train})
        m.opt.step = lambda: None
        logs = m.update(b)
        grads[c] = [p.grad.clone() for p in m.modules.parameters()]
        adj = (a0 + a1) / 2 if c else 0.0  # q uniform
        assert abs(logs["robust_loss"].item() - ((l0 + l1) / 2 + adj)) < 1e-6
    assert all(torch.equal(g0, g2) for g0, g2 in zip(grads[0.0], grads[2.0], strict=True))


def test_group_balanced_sampler_weights_and_shape():
    m = methods.get("groupdro")(mlp(), dict(DRO, reweight_groups=True))
    group = torch.tensor([0, 0, 0, 1, 2, 2])
    m.attach({"train": {"group": group, "y": torch.zeros(6, dtype=torch.long)}})
    assert np.allclose(m.sample_weight.numpy(), [2, 2, 2, 6, 3, 3])  # N / n_g
    batches = list(m.batch_sampler(6, 4, 500, torch.Generator().manual_seed(0)))
    assert len(batches) == 500 and all(bt.shape == (4,) for bt in batches)
    share = torch.bincount(group[torch.cat(batches)], minlength=3).double() / 2000
    assert torch.allclose(share, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.03)


# -- Fisher traces ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("classes,bias", [(3, True), (2, True), (2, False), (1, True)])
def test_closed_form_last_layer_trace_equals_per_sample_autograd(classes, bias):
    net = mlp(classes, bias)
    x = data()["x"]
    with torch.no_grad():
        h = net.features(x)
        closed = last_layer_trace(net.classifier(h), h, bias)
    loop = head_trace_loop(net.features, net.classifier, x).detach()
    torch.testing.assert_close(closed, loop, rtol=1e-5, atol=1e-7)
    if classes == 2:  # 2 classes: 2 p1 p2 (‖h‖² + 1)
        p = torch.softmax(net.classifier(h), 1)
        torch.testing.assert_close(closed, 2 * p[:, 0] * p[:, 1] * (h.pow(2).sum(1) + bias))


def test_last_layer_trace_keeps_its_precision_for_confident_predictions():
    """1 − Σ p² of a float32 softmax is 0 once the top logit leads by ~17; the trace must still equal the sum of
    the off-diagonal products p_i p_j, here computed in float64 without any subtraction (margins up to 60)."""
    z = torch.tensor([[0.0, 30.0], [5.0, -55.0], [1.0, 2.0], [0.0, 20.0], [-3.0, 40.0]])
    z3 = torch.tensor([[0.0, 25.0, -5.0], [60.0, 0.0, 1.0], [0.2, 0.1, 0.0]])
    for logits in (z, z3):
        p = torch.softmax(logits.double(), -1)
        c = range(p.shape[1])  # Σ_{i≠j} p_i p_j, no subtraction
        off_diagonal = torch.stack([sum(p[n, i] * p[n, j] for i in c for j in c if i != j) for n in range(p.shape[0])])
        h = torch.ones(logits.shape[0], 3)
        got = last_layer_trace(logits, h)
        torch.testing.assert_close(got.double(), off_diagonal * 4, rtol=1e-5, atol=0)
        assert (got > 0).all()
    one = torch.tensor([[25.0], [-40.0]])  # one sigmoid logit: p (1 − p)
    pr = torch.sigmoid(one.double())[:, 0]
    torch.testing.assert_close(last_layer_trace(one, torch.ones(2, 3)).double(), pr * torch.sigmoid(-one.double())[:, 0] * 4,
                               rtol=1e-5, atol=0)


def test_full_trace_equals_per_sample_autograd_on_a_net_with_bn():
    net = bn_net()
    model = nn.Sequential(net.features, net.classifier)
    model.train()
    x = data(n=3, shape=(3, 6, 6))["x"]
    model(x)  # move BN running statistics away from their initial values
    full = full_trace(model, x, chunk_size=2)
    assert model.training  # restored
    loop = full_trace_loop(model, x)
    torch.testing.assert_close(full.detach(), loop.detach(), rtol=1e-4, atol=1e-6)
    # and its gradient (second order through torch.func) = double backprop of the loop, with weights μ
    mu = torch.tensor([0.3, 0.0, 1.2])
    params = list(model.parameters())
    g_func = torch.autograd.grad((mu * full).sum(), params)
    g_loop = torch.autograd.grad((mu * full_trace_loop(model, x, create_graph=True)).sum(), params)
    for a, b in zip(g_func, g_loop):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_full_trace_restricted_to_the_head_is_the_closed_form():
    """Freezing everything but the last layer: torch.func over (W, b) = (1 − Σp²)(‖h‖² + 1) in eval mode."""
    net = bn_net()
    net.features.requires_grad_(False)
    model = nn.Sequential(net.features, net.classifier)
    x = data(n=4, shape=(3, 6, 6))["x"]
    model.eval()
    with torch.no_grad():
        h = net.features(x)
        closed = last_layer_trace(net.classifier(h), h)
    torch.testing.assert_close(full_trace(model, x).detach(), closed, rtol=1e-5, atol=1e-7)


def test_dual_step_by_hand():
    mu = torch.tensor([0.0, 0.5, 0.2, 0.0])
    violation = torch.tensor([3.0, 1.0, 0.5]) / 2.0 - 1.0  # T = 3, 1, 0.5; ε = 2
    dual_step(mu, torch.tensor([0, 1, 2]), violation, 0.1)
    torch.testing.assert_close(mu, torch.tensor([0.05, 0.45, 0.125, 0.0]))
    dual_step(mu, torch.tensor([2, 3]), torch.tensor([-5.0, -1.0]), 0.1)  # clamped at 0
    torch.testing.assert_close(mu, torch.tensor([0.05, 0.45, 0.0, 0.0]))
    dual_step(mu, torch.tensor([0, 0]), torch.tensor([1.0, 1.0]), 0.1)  # drawn twice: both increments
    torch.testing.assert_close(mu, torch.tensor([0.25, 0.45, 0.0, 0.0]))


# -- fisher_flat --------------------------------------------------------------------------------------------


def test_fisher_flat_gradient_with_mu_fixed_is_autograd_of_the_objective():
    """mean(ℓ_i + μ_i (T_i/ε − 1)) with T_i from double backprop over (W, b), BN in train mode, μ fixed."""
    b = data(n=6, shape=(3, 6, 6))
    hp = dict(FF, warmup_epochs=0, epsilon=0.7)
    m = methods.get("fisher_flat")(bn_net(), hp)
    m.attach({"train": b})
    m.on_epoch_start(0, 2, 1)
    mu0 = torch.tensor([0.0, 0.3, 1.0, 2.0, 0.5, 0.1])
    m.mu.copy_(mu0)
    ref = bn_net()  # same weights
    ref.features.train()
    h = ref.features(b["x"])
    z = ref.classifier(h)
    losses = F.cross_entropy(z, b["y"], reduction="none")
    params = [ref.classifier.weight, ref.classifier.bias]
    t = []
    for i in range(6):
        lp = torch.log_softmax(z[i], 0)
        ti = 0.0
        for y in range(3):
            gr = torch.autograd.grad(lp[y], params, retain_graph=True, create_graph=True)
            ti = ti + lp[y].exp() * sum(g.pow(2).sum() for g in gr)
        t.append(ti)
    t = torch.stack(t)
    objective = (losses + mu0 * (t / 0.7 - 1)).mean()
    expected = torch.autograd.grad(objective, list(ref.features.parameters()) + list(ref.classifier.parameters()))
    seen = []
    m.opt.step = lambda: seen.append([p.grad.clone() for p in m.modules.parameters()])
    logs = m.update(b)
    assert abs(logs["objective"].item() - objective.item()) < 1e-5
    for got, want in zip(seen[0], expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    # dual ascent on the step's detached traces
    torch.testing.assert_close(m.mu, (mu0 + 0.5 * (t.detach() / 0.7 - 1)).clamp(min=0), rtol=1e-5, atol=1e-6)


def test_fisher_flat_warmup_sets_epsilon_from_the_percentile_then_updates_mu():
    """lr 0 keeps θ fixed, so every recorded trace is the per-sample autograd trace of the initial model."""
    b = data(n=10)
    b["group"] = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 3])
    m = methods.get("fisher_flat")(mlp(), dict(FF, lr=0.0, epsilon_percentile=75))
    m.attach({"train": b})
    net = mlp()
    t = head_trace_loop(net.features, net.classifier, b["x"]).detach()
    assert m.on_epoch_start(0, 2, 2)["epsilon"] == 0.0
    for part in (torch.arange(0, 5), torch.arange(5, 10)):
        logs = m.update({k: v[part] for k, v in b.items()})
        assert logs["mu_mean"].item() == 0.0 and logs["active_fraction"].item() == 0.0
    assert abs(logs["trace_g1"].item() - t[4:7].mean().item()) < 1e-5
    eps = m.on_epoch_start(1, 2, 2)["epsilon"]
    assert abs(eps - np.percentile(t.double().numpy(), 75)) < 1e-6
    part = torch.tensor([1, 3, 8])
    logs = m.update({k: v[part] for k, v in b.items()})
    expected = torch.zeros(10)
    expected[part] = (0.5 * (t[part] / eps - 1)).clamp(min=0)
    torch.testing.assert_close(m.mu, expected, rtol=1e-5, atol=1e-6)
    assert logs["active_fraction"].item() == (expected > 0).float().mean().item()
    assert logs["over_epsilon"].item() == (t[part] > eps).float().mean().item()


def test_fisher_flat_epsilon_is_the_percentile_of_the_traces_after_the_warm_up():
    """With θ moving during the warm-up (lr > 0) and BatchNorm in the net, ε is the percentile of every training
    sample's trace under the weights the warm-up ended with, BN in eval mode (protocol W5), not of the traces
    recorded at the warm-up's steps (earlier weights, train-mode BN)."""
    b = data(n=12, shape=(3, 6, 6))
    m = methods.get("fisher_flat")(bn_net(), dict(FF, lr=0.5, epsilon_percentile=50))
    m.attach({"train": b})
    m.on_epoch_start(0, 2, 3)
    for part in (torch.arange(0, 4), torch.arange(4, 8), torch.arange(8, 12)):
        m.update({k: v[part] for k, v in b.items()})
    during = m.last_trace.clone()
    f, g = m.modules["f"], m.modules["g"]
    f.eval()
    after = head_trace_loop(f, g, b["x"]).detach()
    f.train()
    eps = m.on_epoch_start(1, 2, 3)["epsilon"]
    assert abs(eps - np.percentile(after.double().numpy(), 50)) < 1e-5 * max(1.0, eps)
    assert abs(eps - np.percentile(during.double().numpy(), 50)) > 1e-3 * eps  # the two readings differ here
    assert f.training  # the computation leaves the model in training mode


def test_fisher_flat_largest_trace_reading_has_one_multiplier():
    b = data(n=6)
    m = methods.get("fisher_flat")(mlp(), dict(FF, lr=0.0, multipliers="max", warmup_epochs=0, epsilon=0.01))
    m.attach({"train": b})
    m.on_epoch_start(0, 1, 1)
    m.mu.fill_(2.0)
    net = mlp()
    t = head_trace_loop(net.features, net.classifier, b["x"]).detach()
    logs = m.update(b)
    losses = F.cross_entropy(net.classifier(net.features(b["x"])), b["y"], reduction="none")
    assert abs(logs["objective"].item() - (losses.mean() + 2.0 * (t.max() / 0.01 - 1)).item()) < 1e-4
    assert m.mu.shape == (1,)
    assert abs(m.mu.item() - max(0.0, 2.0 + 0.5 * (t.max().item() / 0.01 - 1))) < 1e-3


def test_fisher_flat_full_trace_steps_and_state_round_trips():
    b = data(n=4, shape=(3, 6, 6))
    m = methods.get("fisher_flat")(bn_net(), dict(FF, trace="full", trace_chunk=2, warmup_epochs=0, epsilon=1e-3))
    m.attach({"train": b})
    m.on_epoch_start(0, 1, 1)
    logs = m.update(b)
    assert all(torch.isfinite(v) for v in logs.values()) and logs["active_fraction"].item() > 0
    other = methods.get("fisher_flat")(bn_net(seed=1), dict(FF, trace="full", trace_chunk=2, warmup_epochs=0,
                                                            epsilon=1e-3))
    other.attach({"train": b})
    other.load_state_dict(m.state_dict())
    assert torch.equal(other.mu, m.mu) and other.epsilon == m.epsilon
    assert m.predict(b["x"]).shape == (4, 3)


def test_fisher_flat_rejects_bad_settings():
    with pytest.raises(ValueError, match="trace 'diag'; expected one of last_layer, full"):
        methods.get("fisher_flat")(mlp(), dict(FF, trace="diag"))
    with pytest.raises(ValueError, match="warmup_epochs 0"):
        methods.get("fisher_flat")(mlp(), dict(FF, warmup_epochs=0))


def test_fisher_flat_finds_the_last_linear_layer_inside_a_classifier():
    """The L2RW LeNet's classifier is Linear-ReLU-Linear with one logit: h = the input of the last Linear."""
    from debias.models import l2rw_lenet_backbone

    torch.manual_seed(0)
    net = l2rw_lenet_backbone(num_outputs=1, width=4)
    m = methods.get("fisher_flat")(net, FF)
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        h, z = m.features_and_logits(x)
    body = nn.Sequential(net.features, net.classifier[:-1])
    loop = head_trace_loop(body, net.classifier[-1], x).detach()
    torch.testing.assert_close(last_layer_trace(z, h), loop, rtol=1e-5, atol=1e-7)


def test_fisher_flat_refuses_a_classifier_that_transforms_the_last_linear_output():
    torch.manual_seed(0)
    net = Backbone(nn.Flatten(), nn.Sequential(nn.Linear(12, 3), nn.Tanh()))
    m = methods.get("fisher_flat")(net, FF)
    with pytest.raises(ValueError, match="not that of its last linear layer"):
        m.features_and_logits(torch.rand(2, 3, 2, 2))


@pytest.mark.parametrize("kind", ["last_layer", "full"])
def test_model_traces_of_a_fixed_model_equal_the_per_sample_loops(kind):
    from debias.methods.fisher import model_traces

    net = bn_net()
    model = nn.Sequential(net.features, net.classifier)
    x = data(n=5, shape=(3, 6, 6))["x"]
    model(x)  # BN running statistics away from their initial values; the model stays in train mode
    got = model_traces(net.features, net.classifier, x, kind, batch_size=2, chunk_size=2)
    assert model.training
    model.eval()
    loop = head_trace_loop(net.features, net.classifier, x) if kind == "last_layer" else full_trace_loop(model, x)
    torch.testing.assert_close(got, loop.detach(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["last_layer", "full"])
def test_model_traces_leave_every_module_in_its_own_mode(kind):
    """Traces are taken in eval mode; afterwards each submodule is back in the mode it came in, whatever the mode
    of the others (a model in eval stays in eval, a BN layer left training inside it stays training)."""
    from debias.methods.fisher import model_traces

    net = bn_net()
    model = nn.Sequential(net.features, net.classifier).eval()
    bn = next(m for m in net.features.modules() if isinstance(m, nn.BatchNorm2d))
    bn.train()
    before = {name: m.training for name, m in model.named_modules()}
    model_traces(net.features, net.classifier, data(n=3, shape=(3, 6, 6))["x"], kind, chunk_size=2)
    assert {name: m.training for name, m in model.named_modules()} == before


# -- through the engine ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,hp", [("groupdro", dict(DRO, reweight_groups=True)), ("fisher_flat", FF)])
def test_engine_run_resumed_after_two_epochs_ends_as_one_that_ran_through(tmp_path, name, hp):
    """q, μ, the recorded traces and ε are part of the resumable state."""
    from debias.engine import RunSpec, fit

    splits = {"train": data(n=24, seed=1), "test": data(n=12, seed=2)}

    def run(epochs, state):
        torch.manual_seed(0)
        m = methods.get(name)(mlp(), hp)
        spec = RunSpec(run_id=name, seed=0, epochs=epochs, batch_size=8, state_path=state, checkpoint_every_s=0,
                       progress=False, fingerprint="f", group_weights={0: 3, 1: 1, 2: 1, 3: 5})
        return m, fit(m, splits, spec)

    straight, out = run(3, tmp_path / "a.pt")
    run(2, tmp_path / "b.pt")  # stopped after the first constrained epoch
    resumed, out_resumed = run(3, tmp_path / "b.pt")
    assert out_resumed["resumed_from_epoch"] == 2
    test = out["metrics"]["test"]  # the train-weighted average from the per-group accuracies, by hand
    expected = (3 * test["acc_group0"] + test["acc_group1"] + test["acc_group2"] + 5 * test["acc_group3"]) / 10
    assert abs(test["weighted_group_accuracy"] - expected) < 1e-12
    assert out_resumed["metrics"] == out["metrics"] and out_resumed["history"] == out["history"]
    if name == "groupdro":
        assert "q_g3" in out["history"][0] and torch.equal(resumed.q, straight.q)
    else:
        assert out["history"][0]["epsilon"] == 0.0 and out["history"][1]["epsilon"] > 0
        assert resumed.epsilon == straight.epsilon and torch.equal(resumed.mu, straight.mu)
        assert (straight.mu > 0).any()
        # the per-epoch distribution by group, recomputed with NumPy from the method's final state
        last, traces, mu = out["history"][-1], straight.last_trace.numpy(), straight.mu.numpy()
        group = splits["train"]["group"].numpy()
        for g in range(4):
            assert last[f"trace_median_g{g}"] == pytest.approx(np.median(traces[group == g]), rel=1e-6)
            assert last[f"trace_p90_g{g}"] == pytest.approx(np.percentile(traces[group == g], 90), rel=1e-6)
            assert last[f"active_g{g}"] == pytest.approx(np.mean(mu[group == g] > 0))
        assert "active_g0" in out["history"][0] and "trace_median_g0" in out["history"][0]  # the warm-up too


@pytest.mark.parametrize("multipliers", ["per_sample", "max"])
def test_fisher_flat_selectable_epochs_are_those_whose_weights_differ_from_erm(tmp_path, multipliers):
    """Why ``FisherFlat.selectable`` starts where it does: trained side by side with ERM (same seed, same batches),
    per-sample multipliers leave the first constrained epoch's weights equal to ERM's (each μ_i is 0 at its one
    visit of the epoch); one shared multiplier moves them within that epoch."""
    from debias.engine import RunSpec, fit

    splits = {"train": data(n=24, seed=1), "test": data(n=12, seed=2)}
    hp = dict(FF, multipliers=multipliers, dual_step_size=5.0, epsilon_percentile=10)
    states = {}
    for epochs in (1, 2, 3):
        for name, h in (("erm", HP), ("fisher_flat", hp)):
            torch.manual_seed(0)
            m = methods.get(name)(mlp(), h)
            fit(m, splits, RunSpec(run_id=name, seed=0, epochs=epochs, batch_size=8, progress=False,
                                   state_path=tmp_path / f"{name}{multipliers}{epochs}.pt", checkpoint_every_s=0))
            states[name, epochs] = m.modules.state_dict()

    def same(epochs):
        a, b = states["erm", epochs], states["fisher_flat", epochs]
        return all(torch.equal(a[k], b[k]) for k in a)

    ff = methods.get("fisher_flat")(mlp(), hp)
    assert [same(e) for e in (1, 2, 3)] == [not ff.selectable(e) for e in (1, 2, 3)]
    assert [ff.selectable(e) for e in (1, 2, 3)] == ([False, False, True] if multipliers == "per_sample"
                                                      else [False, True, True])


@pytest.mark.parametrize("name,hp", [("erm", HP), ("groupdro", DRO), ("fisher_flat", FF)])
def test_the_head_runs_in_float32_under_autocast(monkeypatch, name, hp):
    """With bf16 autocast on (forced on CPU here; on CUDA in the configs) the features are bf16 but the logits, and
    fisher_flat's head input and logits that its trace reads, are the float32 head applied to them."""
    import debias.methods.erm as erm
    import debias.methods.fisher as fisher

    bf16 = lambda device, enabled=True: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    monkeypatch.setattr(erm, "autocast", bf16)
    monkeypatch.setattr(fisher, "autocast", bf16)
    torch.manual_seed(0)
    m = methods.get(name)(Backbone(nn.Sequential(nn.Flatten(), nn.Linear(12, 64)), nn.Linear(64, 5)),
                          {**hp, "autocast": True})
    x = torch.randn(8, 3, 2, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feat = m.modules["f"](x)
        bf16_head = m.modules["g"](feat).float()
    assert feat.dtype == torch.bfloat16
    expected = m.modules["g"](feat.float())
    z = m.logits(x)
    assert z.dtype == torch.float32 and not torch.equal(z, bf16_head)
    torch.testing.assert_close(z, expected, rtol=0, atol=0)
    if name == "fisher_flat":
        h, z = m.features_and_logits(x)
        torch.testing.assert_close(h, feat.float(), rtol=0, atol=0)
        torch.testing.assert_close(z, expected, rtol=0, atol=0)
