import pytest
import torch

from debias import methods
from debias.engine import NonFiniteLoss, RunSpec, epoch_order, fit
from debias.models import colored_mnist_backbone

HP = dict(epochs=4, lr=0.05, momentum=0.9, weight_decay=5e-4, lr_step_epochs=2, lr_gamma=0.5, alpha=0.01,
          entropy_weight=0.01, grl_factor=0.1, ramp_variable="epoch")


def splits(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    x = (torch.rand(n, 3, 28, 28, generator=g) * 255).to(torch.uint8)
    train = {"x": x, "y": y, "bias": torch.randint(0, 8, (n, 3, 14, 14), generator=g),
             "group": (torch.arange(n) % 2)}
    test = {"x": x[:32], "y": y[:32], "group": (torch.arange(32) % 2)}
    return {"train": train, "test": test}


def make(name, hp=HP):
    torch.manual_seed(0)
    return methods.get(name)(colored_mnist_backbone(4, 10, 8, [0.5] * 3, [0.25] * 3), hp)


def spec(tmp_path, **kw):
    base = dict(run_id="t/run", seed=3, epochs=4, batch_size=32, state_path=tmp_path / "state.pt",
                checkpoint_every_s=0, progress=False, eval_every=1)
    return RunSpec(**{**base, **kw})


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("name", ["baseline", "lnl_adaptive"])
def test_interrupted_run_resumes_to_the_same_numbers(tmp_path, name):
    full = make(name)
    ref = fit(full, splits(), spec(tmp_path / "a"))

    broken = make(name)
    calls = {"n": 0}
    update = broken.update

    def dying_update(batch):  # dies in the middle of the third epoch (3 steps per epoch)
        calls["n"] += 1
        if calls["n"] == 8:
            raise Interrupt
        return update(batch)

    broken.update = dying_update
    with pytest.raises(Interrupt):
        fit(broken, splits(), spec(tmp_path / "b"))
    assert (tmp_path / "b" / "state.pt").is_file()

    resumed = make(name)
    torch.manual_seed(12345)  # a different global RNG state must not matter: it is restored from the state
    out = fit(resumed, splits(), spec(tmp_path / "b"))
    assert out["resumed_from_epoch"] == 2
    assert out["metrics"] == ref["metrics"]
    for k, v in full.modules.state_dict().items():
        assert torch.equal(resumed.modules.state_dict()[k], v), k
    assert [h["loss"] for h in out["history"]] == [h["loss"] for h in ref["history"]]


def test_same_seed_same_numbers(tmp_path):
    a = fit(make("blindeye"), splits(), spec(tmp_path / "a"))
    b = fit(make("blindeye"), splits(), spec(tmp_path / "b"))
    assert a["metrics"] == b["metrics"]


def test_state_of_other_settings_is_not_resumed(tmp_path):
    fit(make("baseline"), splits(), spec(tmp_path, epochs=2, fingerprint="one"))
    out = fit(make("baseline"), splits(), spec(tmp_path, epochs=2, fingerprint="two"))
    assert out["resumed_from_epoch"] == 0


def test_nan_loss_stops_naming_run_and_step(tmp_path):
    m = make("baseline")
    update = m.update
    calls = {"n": 0}

    def nan_at_step_5(batch):
        calls["n"] += 1
        logs = update(batch)
        if calls["n"] == 5:
            logs["loss"] = torch.tensor(float("nan"))
        return logs

    m.update = nan_at_step_5
    with pytest.raises(NonFiniteLoss, match=r"run t/run: loss = nan at epoch 1, step 4"):
        fit(m, splits(), spec(tmp_path))


def test_epoch_order_is_a_permutation_fixed_by_seed_and_epoch():
    a = epoch_order(50, 1, 2)
    assert sorted(a.tolist()) == list(range(50))
    assert torch.equal(a, epoch_order(50, 1, 2)) and not torch.equal(a, epoch_order(50, 1, 3))


def test_group_metrics_and_missing_fields(tmp_path):
    m = make("baseline", dict(HP, epochs=1))
    m.predict = lambda x: torch.nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 10).float()
    s = splits()
    s["test"] = {"x": s["test"]["x"][:6], "y": torch.tensor([0, 0, 3, 0, 5, 7]),
                 "group": torch.tensor([0, 0, 0, 1, 1, 1])}
    test = fit(m, s, spec(tmp_path, epochs=1))["metrics"]["test"]
    # always class 0: group 0 right on 2 of 3 (2/3), group 1 on 1 of 3 (1/3) -> worst 1/3; overall 3/6
    assert (test["acc_group0"], test["acc_group1"], test["accuracy"]) == (2 / 3, 1 / 3, 0.5)
    assert test["worst_group_accuracy"] == 1 / 3
    s = splits()
    del s["train"]["bias"]
    with pytest.raises(KeyError, match="needs batch fields \\['bias'\\]"):
        fit(make("lnl", dict(HP, epochs=1)), s, spec(tmp_path / "c", epochs=1))
