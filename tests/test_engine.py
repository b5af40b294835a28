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


def dying(method, at_call):
    """``method`` whose update raises Interrupt at its ``at_call``-th call."""
    calls = {"n": 0}
    update = method.update

    def dying_update(batch):
        calls["n"] += 1
        if calls["n"] == at_call:
            raise Interrupt
        return update(batch)

    method.update = dying_update
    return method


@pytest.mark.parametrize("name", ["baseline", "lnl_adaptive", "random"])
def test_interrupted_run_resumes_to_the_same_numbers(tmp_path, name):
    full = make(name)
    ref = fit(full, splits(), spec(tmp_path / "a"))

    broken = dying(make(name), 8)  # dies in the middle of the third epoch (3 steps per epoch)
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


def val_split(s):
    s["val"] = {"x": s["train"]["x"][32:64], "y": s["train"]["y"][32:64], "group": torch.arange(32) % 2}
    return s


def test_interrupted_selecting_run_resumes_to_the_same_selection(tmp_path):
    """The best weights of each rule are part of the resumable state: a run killed mid-way and resumed selects the
    same epochs, ends with the same metrics for every rule and the same weights (the first rule's)."""
    sel = dict(select=("val_worst_group", "last", "val_average"), epochs=5, group_weights={0: 3.0, 1: 1.0})
    full = make("baseline")
    ref = fit(full, val_split(splits()), spec(tmp_path / "a", **sel))

    broken = dying(make("baseline"), 11)  # dies in the fourth epoch (3 steps per epoch)
    with pytest.raises(Interrupt):
        fit(broken, val_split(splits()), spec(tmp_path / "b", **sel))
    saved = torch.load(tmp_path / "b" / "state.pt", weights_only=False)
    assert saved["epoch"] == 3 and set(saved["best"][0]) == {"val_worst_group", "val_average"}  # run 0 of 1

    resumed = make("baseline")
    torch.manual_seed(12345)
    out = fit(resumed, val_split(splits()), spec(tmp_path / "b", **sel))
    assert out["resumed_from_epoch"] == 3
    assert out["selections"] == ref["selections"]
    assert out["selected"]["rule"] == "val_worst_group" and out["metrics"] == ref["metrics"]
    for k, v in full.modules.state_dict().items():
        assert torch.equal(resumed.modules.state_dict()[k], v), k
    # each rule's epoch is the argmax (first on ties) of its score in the history, computed here by hand
    hist = ref["history"]
    wga = [h["val"]["worst_group_accuracy"] for h in hist]
    avg = [h["val"]["accuracy"] for h in hist]  # plain accuracy: the train weights (3:1) do not enter selection
    assert ref["selections"]["val_worst_group"]["epoch"] == 1 + wga.index(max(wga))
    assert ref["selections"]["val_average"]["epoch"] == 1 + avg.index(max(avg))
    assert ref["selections"]["last"]["epoch"] == 5
    # the selected weights give back the val metrics logged at their epoch
    e = ref["selections"]["val_worst_group"]["epoch"]
    assert ref["selections"]["val_worst_group"]["metrics"]["val"] == hist[e - 1]["val"]
    assert ref["selections"]["last"]["metrics"]["val"] == hist[-1]["val"]


def test_selection_rules_on_a_fabricated_history():
    """update_best on hand-written validation metrics: the maximum of each rule, the first epoch on ties, the
    weights of that epoch; the average is the plain validation accuracy (group_DRO's avg_acc) even where a weighted
    group average is logged."""
    from debias.engine import update_best

    vals = [  # epoch 1..5
        {"accuracy": 0.90, "weighted_group_accuracy": 0.80, "worst_group_accuracy": 0.20},
        {"accuracy": 0.70, "weighted_group_accuracy": 0.95, "worst_group_accuracy": 0.50},
        {"accuracy": 0.95, "weighted_group_accuracy": 0.90, "worst_group_accuracy": 0.60},
        {"accuracy": 0.60, "weighted_group_accuracy": 0.95, "worst_group_accuracy": 0.60},
        {"accuracy": 0.95, "weighted_group_accuracy": 0.10, "worst_group_accuracy": 0.10},
    ]
    best = {}
    for epoch, v in enumerate(vals, start=1):
        update_best(best, ("last", "val_average", "val_worst_group"), epoch, v,
                    lambda e=epoch: {"w": torch.tensor([float(e)])})
    assert set(best) == {"val_average", "val_worst_group"}
    assert (best["val_average"]["epoch"], best["val_average"]["score"]) == (3, 0.95)  # epoch 5 ties: the first
    assert (best["val_worst_group"]["epoch"], best["val_worst_group"]["score"]) == (3, 0.60)
    assert best["val_average"]["state"]["w"].item() == 3.0 and best["val_worst_group"]["state"]["w"].item() == 3.0


def test_selection_needs_val_evaluated_every_epoch(tmp_path):
    with pytest.raises(ValueError, match="needs a 'val' split"):
        fit(make("baseline"), splits(), spec(tmp_path, select=("val_average",)))
    with pytest.raises(ValueError, match="eval_every 1"):
        fit(make("baseline"), val_split(splits()), spec(tmp_path, select=("val_average",), eval_every=2))
    with pytest.raises(ValueError, match="selection rules \\['best'\\]"):
        fit(make("baseline"), val_split(splits()), spec(tmp_path, select=("best",)))


def test_a_random_state_without_its_own_stream_is_refused_with_what_to_do(tmp_path):
    broken = dying(make("random"), 8)
    with pytest.raises(Interrupt):
        fit(broken, splits(), spec(tmp_path))
    state = torch.load(tmp_path / "state.pt", weights_only=False)
    del state["method"]["generators"]  # as an older version saved it
    torch.save(state, tmp_path / "state.pt")
    with pytest.raises(ValueError, match="no random stream of the run's own.*delete the run's state.pt"):
        fit(make("random"), splits(), spec(tmp_path))


def test_selection_skips_the_epochs_a_method_does_not_allow(tmp_path):
    """A method's warm-up epochs (``Method.selectable`` false) are never selected: the run whose best validation
    epoch is excluded selects the best of the others, computed here from its history; a run that allows no epoch
    is refused before training."""
    sel = dict(select=("val_worst_group", "val_average"), epochs=5)
    ref = fit(make("baseline"), val_split(splits()), spec(tmp_path / "a", **sel))
    taken = {ref["selections"][r]["epoch"] for r in sel["select"]}

    m = make("baseline")
    m.selectable = lambda epoch: epoch not in taken
    out = fit(m, val_split(splits()), spec(tmp_path / "b", **sel))
    assert [h["val"] for h in out["history"]] == [h["val"] for h in ref["history"]]  # the same training
    allowed = [e for e in range(1, 6) if e not in taken]
    for rule, key in (("val_worst_group", "worst_group_accuracy"), ("val_average", "accuracy")):
        scores = [out["history"][e - 1]["val"][key] for e in allowed]
        assert out["selections"][rule]["epoch"] == allowed[scores.index(max(scores))]

    never = make("baseline")
    never.selectable = lambda epoch: False
    with pytest.raises(ValueError, match="no candidate epoch.*epochs 1..5"):
        fit(never, val_split(splits()), spec(tmp_path / "c", **sel))
