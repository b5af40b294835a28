from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from debias import methods
from debias.losses import per_example_loss
from debias.models import Backbone, SamePool, l2rw_lenet_backbone

HP = dict(steps=10, lr=1e-3, momentum=0.9, weight_decay=0.0, ties="reference", meta_lr=1.0)


def tiny_backbone(out=1):
    torch.manual_seed(0)
    f = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.Tanh())
    return Backbone(f, nn.Linear(5, out))


def data(n=16, nval=6, out=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 3, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, max(out, 2), (n,), generator=g)
    vx = torch.randn(nval, 1, 3, 4, generator=g, dtype=torch.float64)
    vy = torch.arange(nval) % max(out, 2)
    return x, y, {"train": {"x": x, "y": y}, "val": {"x": vx, "y": vy}}


@pytest.mark.parametrize("out", [1, 3])
@pytest.mark.parametrize("mode", ["lookahead", "forward"])
def test_l2rw_weights_are_rectified_normalised_gradient_dot_products(out, mode):
    bb = tiny_backbone(out)
    m = methods.get("l2rw")(bb, HP)
    m.modules.double()
    x, y, splits = data(out=out)
    m.attach(splits)
    w = m.meta_weights(x, y)[0] if mode == "lookahead" else m.forward_mode_weights(x, y)

    # independent: per-example gradients with vmap, dotted with the validation-loss gradient
    model = nn.Sequential(bb.features, bb.classifier)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_one(p, xi, yi):
        return per_example_loss(functional_call(model, p, (xi[None],)), yi[None])[0]

    per_ex = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, x, y)
    val = grad(lambda p: per_example_loss(functional_call(model, p, (splits["val"]["x"],)), splits["val"]["y"]).mean())(params)
    dots = sum((per_ex[k].flatten(1) * val[k].flatten()).sum(1) for k in params)
    expected = dots.clamp(min=0) / dots.clamp(min=0).sum()
    torch.testing.assert_close(w, expected, rtol=1e-5, atol=1e-12)
    assert (w >= 0).all() and abs(w.sum().item() - 1) < 1e-9


def test_meta_gradient_matches_finite_differences():
    bb = tiny_backbone()
    model = nn.Sequential(bb.features, bb.classifier).double()
    x, y, splits = data()
    params = {k: v.detach() for k, v in model.named_parameters()}

    def val_loss_after_step(eps):
        p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        losses = per_example_loss(functional_call(model, p, (x,)), y)
        g = torch.autograd.grad((eps * losses).sum(), list(p.values()))
        p2 = {k: v.detach() - gi for (k, v), gi in zip(p.items(), g)}
        return per_example_loss(functional_call(model, p2, (splits["val"]["x"],)), splits["val"]["y"]).mean()

    m = methods.get("l2rw")(bb, HP)
    m.modules.double()
    m.attach(splits)
    # u = dL_val/deps at eps = 0, via the method's own graph
    mp = dict(model.named_parameters())
    losses = per_example_loss(functional_call(model, mp, (x,)), y)
    eps = torch.zeros_like(losses, requires_grad=True)
    gr = torch.autograd.grad((eps * losses).sum(), list(mp.values()), create_graph=True)
    look = {k: p - g for (k, p), g in zip(mp.items(), gr)}
    val = per_example_loss(functional_call(model, look, (splits["val"]["x"],)), splits["val"]["y"]).mean()
    (u,) = torch.autograd.grad(val, eps)
    h = 1e-6
    for i in (0, 5, 11):
        e = torch.zeros(len(y), dtype=torch.float64)
        e[i] = h
        fd = (val_loss_after_step(e) - val_loss_after_step(-e)) / (2 * h)
        assert abs(fd.item() - u[i].item()) < 1e-7 * max(1.0, abs(u[i].item())) + 1e-9
    w, _ = m.meta_weights(x, y)  # and the method's weights are max(-u, 0) normalised
    torch.testing.assert_close(w, (-u).clamp(min=0) / (-u).clamp(min=0).sum())


def test_normalise_guard_keeps_all_zero_weights_zero():
    from debias.methods.reweighting import normalise

    assert torch.equal(normalise(torch.zeros(4)), torch.zeros(4))
    torch.testing.assert_close(normalise(torch.tensor([0.0, 1.0, 3.0])), torch.tensor([0.0, 0.25, 0.75]))


def test_resample_batches_are_balanced_and_deterministic():
    m = methods.get("resample")(tiny_backbone(), dict(HP))
    y = torch.tensor([0] * 3 + [1] * 97)
    m.attach({"train": {"x": torch.zeros(100, 1, 3, 4), "y": y}})
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    b1 = list(m.batch_sampler(100, 10, 4, g1))
    b2 = list(m.batch_sampler(100, 10, 4, g2))
    assert len(b1) == 4 and all(torch.equal(a, b) for a, b in zip(b1, b2))
    for idx in b1:
        assert len(idx) == 10 and int((y[idx] == 0).sum()) == 5


def test_random_weights_are_the_runs_own_normal_draws_clamped_and_normalised():
    def built(seed):
        backbone = tiny_backbone()  # (seeds the process itself)
        torch.manual_seed(seed)  # the run's seed, as the runner sets it before building the method
        m = methods.get("random")(backbone, dict(HP))
        m.attach({"train": {"x": torch.zeros(10, 1, 3, 4), "y": torch.zeros(10, dtype=torch.long)}})
        return m

    m = built(7)
    torch.manual_seed(0)  # the process's stream is not the run's
    stream = torch.Generator().manual_seed(m.stream_seed)
    for _ in range(20):
        w = m.weights({}, torch.ones(50))
        z = torch.randn(50, generator=stream).clamp(min=0)
        torch.testing.assert_close(w, z / z.sum())
        assert (w >= 0).all() and 0 < (w > 0).sum() < 50
    assert built(7).stream_seed == m.stream_seed != built(8).stream_seed


def test_proportion_weights_are_the_reference_p_and_1_minus_p():
    m = methods.get("proportion")(tiny_backbone(), dict(HP))
    y = torch.tensor([0] * 10 + [1] * 90)
    m.attach({"train": {"x": torch.zeros(100, 1, 3, 4), "y": y}})
    w = m.weights({"y": torch.tensor([0, 1])}, torch.ones(2))
    torch.testing.assert_close(w, torch.tensor([0.9, 0.1]))


def test_hardmining_keeps_minority_and_the_hardest_majority():
    y = torch.tensor([1, 1, 0, 1, 1, 0, 1])
    losses = torch.tensor([0.1, 0.9, 0.5, 0.2, 0.8, 0.3, 0.05])
    train = {"train": {"x": torch.zeros(7, 1, 3, 4), "y": y}}
    hard = methods.get("hardmining")(tiny_backbone(), dict(HP, ties="loss"))
    hard.attach(train)
    w = hard.weights({"y": y}, losses)
    torch.testing.assert_close(w, torch.tensor([0, 0.25, 0.25, 0, 0.25, 0.25, 0]))
    ref = methods.get("hardmining")(tiny_backbone(), dict(HP, ties="reference"))
    ref.attach(train)
    w = ref.weights({"y": y}, losses)  # the reference's tie: the first two majority examples in batch order
    torch.testing.assert_close(w, torch.tensor([0.25, 0.25, 0.25, 0, 0, 0.25, 0]))


def test_lenet_shapes():
    bb = l2rw_lenet_backbone()
    assert bb.features(torch.zeros(2, 1, 28, 28)).shape == (2, 1024)
    assert bb.classifier(bb.features(torch.zeros(2, 1, 28, 28))).shape == (2, 1)


def tf_same_windows(n: int, k: int = 3, stride: int = 2, before=None):
    """TensorFlow's SAME pooling windows over a side of n, from its documented rule: out = ceil(in / stride),
    pad_total = max((out - 1) * stride + k - in, 0), pad_before = pad_total // 2 (the rest after); each window
    (i, j, row slice, column slice) clipped to the array (padding never wins a max)."""
    out = -(-n // stride)
    start = -(max((out - 1) * stride + k - n, 0) // 2 if before is None else before)
    for i in range(out):
        for j in range(out):
            r0, c0 = start + i * stride, start + j * stride
            yield i, j, slice(max(r0, 0), r0 + k), slice(max(c0, 0), c0 + k)


def tf_same_max_pool(a: np.ndarray, before=None) -> np.ndarray:
    """TensorFlow's SAME max-pool 3x3 / 2 of a 2-D array: the max over each ``tf_same_windows`` window."""
    out = -(-a.shape[0] // 2)
    res = np.empty((out, out))
    for i, j, rows, cols in tf_same_windows(a.shape[0], before=before):
        res[i, j] = a[rows, cols].max()
    return res


def test_same_pool_by_hand_pads_bottom_right():
    # 4 x 4 -> 2 x 2: pad_total = max(1 * 2 + 3 - 4, 0) = 1, all of it after; windows rows/cols {0,1,2}, {2,3}:
    # maxima of arange(16).reshape(4, 4) at (2,2)=10, (2,3)=11, (3,2)=14, (3,3)=15
    # (symmetric padding, one row/column before, would give windows {-1,0,1}, {1,2,3}: 5, 7, 13, 15)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert SamePool(4)(x)[0, 0].tolist() == [[10.0, 11.0], [14.0, 15.0]]


@pytest.mark.parametrize("size", [28, 14, 7, 6, 5])
def test_same_pool_matches_tensorflow_same_padding(size):
    a = np.random.default_rng(size).standard_normal((2, 3, size, size))
    got = SamePool(size)(torch.from_numpy(a)).numpy()
    for b in range(2):
        for c in range(3):
            np.testing.assert_array_equal(got[b, c], tf_same_max_pool(a[b, c]))
    if size in (28, 14, 6):  # an odd pad_total: padding the other side first gives other values on this input
        assert not np.array_equal(got[0, 0], tf_same_max_pool(a[0, 0], before=1))


def tf_same_max_pool_grad(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The gradient of ``tf_same_max_pool`` for upstream gradient ``g``: each output's gradient goes to its
    window's maximum (random inputs have no ties)."""
    grad = np.zeros_like(a)
    for i, j, rows, cols in tf_same_windows(a.shape[0]):
        r, c = np.unravel_index(a[rows, cols].argmax(), a[rows, cols].shape)
        grad[rows.start + r, cols.start + c] += g[i, j]
    return grad


@pytest.mark.parametrize("size", [28, 14, 7, 6, 5, 2, 1])
def test_same_pool_gradient(size):
    """The gradient reaches each window's maximum as in TensorFlow's SAME pooling (on a channels-last input, as the
    mini runs feed it)."""
    rng = np.random.default_rng(size)
    a, g = rng.standard_normal((2, 4, size, size)), rng.standard_normal((2, 4, -(-size // 2), -(-size // 2)))
    x = torch.from_numpy(a).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    y = SamePool(size)(x)
    y.backward(torch.from_numpy(g))
    for b in range(2):
        for c in range(4):
            np.testing.assert_array_equal(y[b, c].detach().numpy(), tf_same_max_pool(a[b, c]))
            np.testing.assert_allclose(x.grad[b, c].numpy(), tf_same_max_pool_grad(a[b, c], g[b, c]))


def bn_backbone():
    """A small f/g with batch norm in both (BN momentum 0.1, running stats start at mean 0, var 1)."""
    torch.manual_seed(0)
    f = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.BatchNorm1d(5), nn.Tanh())
    return Backbone(f, nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 1)))


def bn_buffers(m):
    return {k: v.clone() for k, v in m.modules.named_buffers()}


def l2rw_on_bn_net(mode):
    m = methods.get("l2rw")(bn_backbone(), dict(HP, meta_gradient=mode))
    m.modules.double()
    x, y, splits = data()
    m.attach(splits)
    return m, x, y


@pytest.mark.parametrize("mode", ["lookahead", "forward"])
def test_l2rw_meta_weights_leave_batch_norm_statistics_alone(mode):
    m, x, y = l2rw_on_bn_net(mode)
    before = bn_buffers(m)
    if mode == "forward":  # no training forward at all: every buffer as it was
        m.forward_mode_weights(x, y)
        for k, v in bn_buffers(m).items():
            assert torch.equal(v, before[k]), k
        return
    m.meta_weights(x, y)  # its training forward is the real update's: it, and only it, moves the statistics
    after = bn_buffers(m)
    # f's BN saw a = W1 x + b1 of the 16 training examples once: 0.9 * (0, 1) + 0.1 * (mean, unbiased var)
    lin = m.modules["f"][1]
    a = (x.flatten(1) @ lin.weight.T + lin.bias).detach()
    torch.testing.assert_close(after["f.2.running_mean"], 0.1 * a.mean(0))
    torch.testing.assert_close(after["f.2.running_var"], 0.9 + 0.1 * a.var(0))
    assert after["f.2.num_batches_tracked"] == 1 and after["g.1.num_batches_tracked"] == 1


@pytest.mark.parametrize("mode", ["lookahead", "forward"])
def test_l2rw_steps_move_batch_norm_statistics_once_each_like_baseline_steps(mode):
    m, x, y = l2rw_on_bn_net(mode)
    base = methods.get("baseline")(bn_backbone(), HP)
    base.modules.double()
    m.update({"x": x, "y": y})
    base.update({"x": x, "y": y})
    expected = bn_buffers(base)
    assert expected["f.2.num_batches_tracked"] == 1
    for k, v in bn_buffers(m).items():
        torch.testing.assert_close(v, expected[k], msg=k)
    m.update({"x": x, "y": y})  # and the next step moves them once more
    assert [v.item() for k, v in bn_buffers(m).items() if k.endswith("num_batches_tracked")] == [2, 2]


def test_l2rw_weights_on_a_batch_norm_net_agree_in_both_modes():
    """With BN the examples of a batch interact, and both modes differentiate the same batch-mode losses."""
    look, x, y = l2rw_on_bn_net("lookahead")
    fwd, _, _ = l2rw_on_bn_net("forward")
    w = look.meta_weights(x, y)[0]
    assert (w > 0).sum() >= 2
    torch.testing.assert_close(fwd.forward_mode_weights(x, y), w, rtol=1e-6, atol=1e-12)


def test_fairface_figures_mark_the_method_the_paper_does_not_draw(tmp_path, monkeypatch):
    """resample is described in the paper but drawn in none of its Figures 1-4 (protocol D9): its legend entry
    says so; the other methods keep their names."""
    import json

    import debias.plots
    from debias.experiments.reweighting import aggregate_fairface

    files = []
    for method in ("baseline", "resample"):
        for share in (0.6, 0.9):
            for seed in (0, 1):
                m = {"accuracy": 0.7, "acc_poc": 0.5, "acc_white": 0.9}
                path = tmp_path / f"{method}_{share}_{seed}.json"
                path.write_text(json.dumps({"method": method, "seed": seed, "variant": {"share": share},
                                            "metrics": {"train": m, "test": m}}))
                files.append(str(path))
    legends = []
    monkeypatch.setattr(debias.plots, "save_figure",
                        lambda fig, outputs: legends.append([t.get_text() for t in fig.legends[0].texts]))
    out = SimpleNamespace(**{k: str(tmp_path / f"summary.{k}") for k in ("csv", "md", "tex", "html")},
                          figures=[str(tmp_path / "fairface_test_acc_60-90.png")])
    aggregate_fairface(files, ["baseline", "resample"], "mini", out)
    assert legends == [["baseline", "resample (not in the paper's figures)"]]
