"""Batched runs (debias.batched, ``train.batch_runs``): N runs trained as one vmapped model give what N separate
runs give, to float tolerance, and write the same files."""

import pytest
import torch
import torch.nn.functional as F

from debias import methods
from debias.batched import StackedModule, StackedSplits, batchable
from debias.io import read_json
from debias.losses import mean_cross_entropy, member_mean
from debias.methods.adversarial import bias_ce, mean_ce_to_uniform, mean_neg_entropy
from debias.models import ColorHeads, ConvFeatures, colored_mnist_backbone
from debias.runner import Cell, RunOutputs, train_cells

HP = dict(epochs=3, lr=0.05, momentum=0.9, weight_decay=5e-4, lr_step_epochs=2, lr_gamma=0.5, alpha=0.01,
          entropy_weight=0.01, grl_factor=0.1, ramp_variable="progress")


def taken_by(row: str, hp: dict) -> dict:
    """The keys of ``hp`` that method ``row`` takes (the config check refuses any other): one shared dict of
    hyperparameters serves every row of these tests."""
    cls = methods.get(row)
    return {k: v for k, v in hp.items() if k in (*cls.hparams, *cls.optional_hparams, *methods.RUN_KEYS)}


TRAIN = dict(batch_size=24, eval_every=2, checkpoint_every_s=0, channels_last=False, deterministic=True)


def data(seed, n=60):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    x = (torch.rand(n, 3, 28, 28, generator=g) * 255).to(torch.uint8)
    bias = torch.randint(0, 8, (n, 3, 14, 14), generator=g)
    bias[torch.rand(bias.shape, generator=g) < 0.5] = 255  # background positions: ignored by bias_ce
    train = {"x": x, "y": y, "bias": bias, "group": torch.arange(n) % 2}
    test = {"x": x[:20], "y": y[:20], "group": torch.arange(20) % 2}
    return {"train": train, "test": test}


def backbone():
    return colored_mnist_backbone(4, 10, 8, [0.5] * 3, [0.25] * 3)


# -- the per-run reductions against the same losses computed run by run ---------------------------------------

def test_per_run_reductions_equal_each_runs_own_loss():
    g = torch.Generator().manual_seed(0)
    n_runs, b = 3, 5
    logits = torch.randn(n_runs * b, 8, 3, 14, 14, generator=g)
    target = torch.randint(0, 8, (n_runs * b, 3, 14, 14), generator=g)
    target[torch.rand(target.shape, generator=g) < 0.6] = 255
    target[b:2 * b, 1] = 255  # run 1 has no valid target in channel 1: that channel adds 0 for it alone
    cls_logits, y = torch.randn(n_runs * b, 10, generator=g), torch.randint(0, 10, (n_runs * b,), generator=g)
    per_run = {
        "bias_ce": bias_ce(logits, target, members=n_runs),
        "neg_entropy": mean_neg_entropy(logits, n_runs),
        "ce_uniform": mean_ce_to_uniform(logits, n_runs),
        "ce": mean_cross_entropy(cls_logits, y, n_runs),
        "mean": member_mean(y.float(), n_runs),
    }
    for r in range(n_runs):
        part = slice(r * b, (r + 1) * b)
        alone = {
            "bias_ce": bias_ce(logits[part], target[part]),
            "neg_entropy": mean_neg_entropy(logits[part]),
            "ce_uniform": mean_ce_to_uniform(logits[part]),
            "ce": F.cross_entropy(cls_logits[part], y[part]),
            "mean": y[part].float().mean(),
        }
        for key, value in alone.items():
            assert per_run[key].shape == (n_runs,), key
            torch.testing.assert_close(per_run[key][r], value, rtol=1e-6, atol=1e-6, msg=key)


def test_stacked_module_is_its_members_side_by_side():
    torch.manual_seed(0)
    members = [ConvFeatures(4, [0.5] * 3, [0.25] * 3) for _ in range(3)]
    heads = [ColorHeads(4) for _ in range(3)]
    for m in members + heads:  # batch norm with running statistics already away from their initial values
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-1, 1)
                mod.running_var.uniform_(0.5, 2)
    stacked, stacked_heads = StackedModule(members), StackedModule(heads)
    x = torch.rand(3 * 7, 3, 28, 28)
    for training in (True, False):
        for m in members + heads + [stacked, stacked_heads]:
            m.train(training)
        feats = stacked(x)
        out = stacked_heads(feats)
        for i in range(3):
            part = slice(7 * i, 7 * (i + 1))
            alone = members[i](x[part])
            torch.testing.assert_close(feats[part], alone, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(out[part], heads[i](alone), rtol=1e-5, atol=1e-5)
            for k, v in list(members[i].state_dict().items()) + list(heads[i].state_dict().items()):
                mine = {**stacked.member_state(i), **{f"h{k}": t for k, t in stacked_heads.member_state(i).items()}}
                key = k if k in stacked.member_state(i) else f"h{k}"
                torch.testing.assert_close(mine[key].to(v.dtype), v, rtol=1e-5, atol=1e-6, msg=k)


def test_stacked_splits_give_each_run_its_own_rows():
    a, b = data(0)["train"], data(1)["train"]
    stacked = StackedSplits([a, a, b])  # two runs on the same data: stored once
    assert stacked.fields["x"].shape[0] == 2
    idx = torch.tensor([[0, 5], [7, 2], [1, 3]])
    batch = stacked.batch(idx)
    for r, (split, rows) in enumerate([(a, idx[0]), (a, idx[1]), (b, idx[2])]):
        for k in split:
            got = batch[k][2 * r : 2 * r + 2]
            want = split[k][rows].float() / 255 if k == "x" else split[k][rows]
            assert torch.equal(got, want), k


def test_which_methods_can_train_batched():
    rows = ("baseline", "gray", "blindeye", "lnl", "lnl_adaptive", "proportion", "resample", "hardmining", "random",
            "l2rw")
    assert [batchable(methods.get(n)) for n in rows] == [True] * len(rows)
    # group losses or mixed pairs over the whole batch
    assert not any(batchable(methods.get(n)) for n in ("groupdro", "fisher_flat", "mixup", "cutmix"))


# -- steps: a batched step is each run's own step ---------------------------------------------------------------

@pytest.mark.parametrize("row", ["baseline", "gray", "blindeye", "lnl", "lnl_adaptive"])
def test_batched_steps_are_each_runs_own_steps(row):
    """Three runs (two on one dataset, one on another), three steps: the batched weights, momenta and logged losses
    are each run's own to float tolerance (max-pool near-ties amplify rounding). (Over whole runs, below, float differences grow: an adversarial step can
    route a gradient through another max-pool winner; there the tolerance is looser.)"""
    from debias.batched import load_member, stack_methods
    from debias.engine import epoch_order, make_batch

    cls = methods.get(row)
    hp = {**HP, "ramp_variable": "progress"}

    def build(seed):
        torch.manual_seed(seed)
        return cls(backbone(), hp)

    seeds, sets = (3, 4, 3), (data(0), data(0), data(1))
    members, alone = [build(s) for s in seeds], [build(s) for s in seeds]
    batched = stack_methods(members, cls(backbone(), hp))
    train = StackedSplits([d["train"] for d in sets])
    for m in [batched] + alone:
        m.train(True)
        m.on_epoch_start(1, 3, 3)
    order = torch.stack([epoch_order(60, s, 0)[:72] for s in seeds])
    for step in range(3):
        idx = order[:, 24 * step : 24 * (step + 1)]
        logs = batched.update(train.batch(idx))
        for i, m in enumerate(alone):
            own = m.update(make_batch(sets[i]["train"], idx[i]))
            for key, value in own.items():
                got = logs[key][i] if logs[key].dim() else logs[key]
                torch.testing.assert_close(got, value.reshape(()), rtol=1e-4, atol=1e-5, msg=f"{key} step {step}")
    for i, m in enumerate(alone):
        load_member(batched, members[i], i)
        for (k, w), v in zip(members[i].modules.state_dict().items(), m.modules.state_dict().values()):
            torch.testing.assert_close(w.to(v.dtype), v, rtol=1e-3, atol=1e-4, msg=f"run {i} {k}")
        for key, opt in m.optimizers.items():  # momentum buffers, parameter by parameter
            stacked_opt = batched.optimizers[key]
            for p_alone, p_stacked in zip(opt.param_groups[0]["params"], stacked_opt.param_groups[0]["params"]):
                torch.testing.assert_close(stacked_opt.state[p_stacked]["momentum_buffer"][i],
                                           opt.state[p_alone]["momentum_buffer"], rtol=1e-3, atol=1e-4)


# -- whole runs: batched vs one at a time ------------------------------------------------------------------------

def cells(root, init=None):
    """Two cells (different data) of two seeds each: four runs."""
    out = []
    for c, (name, seed_data) in enumerate([("a", 0), ("b", 1)]):
        split = data(seed_data)
        runs = [RunOutputs(seed=s, metrics=root / f"{name}{s}" / "metrics.json", model=root / f"{name}{s}" / "model.pt",
                           state=root / f"{name}{s}" / "state.pt",
                           init_model=None if init is None else init / f"{name}{s}" / "model.pt") for s in (3, 4)]
        out.append(Cell({"cell": name}, split, runs, {"data": name}))
    return out


def train(root, row, batch_runs, init=None, **kw):
    return train_cells(experiment="t", cells=cells(root, init), row=row, hparams=taken_by(row, HP),
                       train_cfg={**TRAIN, "batch_runs": batch_runs}, make_backbone=backbone, model_cfg={},
                       device=torch.device("cpu"), progress=False, **kw)


@pytest.mark.parametrize("row", ["baseline", "gray", "blindeye", "lnl", "lnl_adaptive", "random"])
def test_batched_runs_give_the_numbers_of_separate_runs(tmp_path, row):
    init = None
    if row.startswith("lnl"):  # LNL starts from the baseline's final model, as in the table
        train(tmp_path / "init", "baseline", 1)
        init = tmp_path / "init"
    alone = train(tmp_path / "alone", row, 1, init)
    batched = train(tmp_path / "batched", row, 3, init)  # a batch of three, then the fourth run alone
    assert [r["batched_runs"] for r in batched] == [3, 3, 3, 1]
    for a, b in zip(alone, batched):
        assert (a["variant"], a["seed"]) == (b["variant"], b["seed"])
        for split in ("train", "test"):
            assert abs(a["metrics"][split]["accuracy"] - b["metrics"][split]["accuracy"]) <= 1 / 20 + 1e-9
        assert [h["epoch"] for h in a["history"]] == [h["epoch"] for h in b["history"]]
        for ha, hb in zip(a["history"], b["history"]):
            assert set(ha) == set(hb)
            for key in ha:
                if isinstance(ha[key], float):
                    assert hb[key] == pytest.approx(ha[key], rel=1e-3, abs=1e-4), (key, ha["epoch"])
            if ha["epoch"] == 2:  # eval_every 2: every split evaluated on the run's own weights and data
                for split in ("train", "test"):
                    assert abs(ha[split]["accuracy"] - hb[split]["accuracy"]) <= 1 / 20 + 1e-9
    for name in ("a3", "a4", "b3", "b4"):
        wa = torch.load(tmp_path / "alone" / name / "model.pt", weights_only=True)
        wb = torch.load(tmp_path / "batched" / name / "model.pt", weights_only=True)
        assert list(wa) == list(wb)
        for k in wa:
            torch.testing.assert_close(wb[k].to(wa[k].dtype), wa[k], rtol=1e-3, atol=1e-3, msg=f"{name} {k}")
        assert not (tmp_path / "batched" / name / "state.pt").exists()
        assert read_json(tmp_path / "batched" / name / "metrics.json")["seed"] == int(name[1])


def test_interrupted_batch_resumes_to_the_same_numbers(tmp_path, monkeypatch):
    ref = train(tmp_path / "ref", "lnl_adaptive", 4)
    from debias.methods.adversarial import LearningNotToLearnAdaptive

    update, calls = LearningNotToLearnAdaptive.update, {"n": 0}

    def dying(self, batch):
        calls["n"] += 1
        if calls["n"] == 7:  # in the third epoch (3 steps an epoch)
            raise KeyboardInterrupt
        return update(self, batch)

    monkeypatch.setattr(LearningNotToLearnAdaptive, "update", dying)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "run", "lnl_adaptive", 4)
    monkeypatch.setattr(LearningNotToLearnAdaptive, "update", update)
    assert (tmp_path / "run" / "a3" / "state.pt").is_file()  # the batch's state, in its first run's state file
    torch.manual_seed(999)  # restored from the state, not taken from here
    out = train(tmp_path / "run", "lnl_adaptive", 4)
    assert [r["resumed_from_epoch"] for r in out] == [2] * 4
    for a, b in zip(ref, out):
        assert a["metrics"] == b["metrics"]
        assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


def test_a_method_that_cannot_be_batched_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"batch_runs = 2: method 'groupdro'.*batch_runs: 1"):
        train_cells(experiment="t", cells=cells(tmp_path), row="groupdro",
                    hparams={"steps": 2, "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0, "robust_step_size": 0.01,
                             "generalization_adjustment": 0.0, "reweight_groups": False},
                    train_cfg={**TRAIN, "batch_runs": 2}, make_backbone=backbone, model_cfg={},
                    device=torch.device("cpu"), progress=False)
    assert not any(tmp_path.rglob("metrics.json"))


@pytest.mark.slow
def test_batched_colored_mnist_through_snakemake(tmp_path):
    """The rule's jobs (one per method: both sigma2, both seeds) with batch_runs 4: every run batched with the
    three others, lnl from the baseline's models, the table built from the four runs of each row."""
    import pandas as pd
    from conftest import snakemake, write_config

    def batched(cfg):
        cm = cfg["colored_mnist"]
        cm["methods"], cm["seeds"], cm["sigma2"] = ["baseline", "lnl"], [0, 1], [0.020, 0.050]
        for hp in cm["hparams"].values():
            hp["epochs"] = 1
        cm["train"].update(batch_runs=4, channels_last=False)
        assert (cm["seeds_per_job"], cm["sigma2_per_job"], len(cm["seeds"]) * len(cm["sigma2"])) == ("all", "all", 4)

    path = write_config(tmp_path, batched)
    snakemake("colored_mnist", "--cores", 2, "--configfile", path, check=True)
    res = tmp_path / "results"
    records = [read_json(p) for p in sorted((res / "runs/colored_mnist").rglob("metrics.json"))]
    assert len(records) == 8 and {r["batched_runs"] for r in records} == {4}
    assert all(r["init_from"].endswith(f"baseline/seed={r['seed']}/model.pt") for r in records if r["method"] == "lnl")
    table = pd.read_csv(res / "tables/colored_mnist.csv")
    assert len(table) == 4 and (table.n_seeds == 2).all() and table.acc_mean.between(0, 1).all()
    assert not list((res / "state").rglob("*.pt"))


# -- the reweighting family (FairFace, the L2RW grid): one-logit LeNet, per-run class counts and samplers --------

RW_HP = dict(steps=6, lr=0.1, momentum=0.9, weight_decay=1e-4, meta_lr=1.0, ties="reference")
RW_ROWS = [("baseline", {}), ("proportion", {}), ("resample", {}), ("hardmining", {}),
           ("hardmining", {"ties": "loss"}), ("random", {}), ("l2rw", {}), ("l2rw", {"meta_gradient": "forward"})]


def rw_data(seed, minority, n=48, n_val=8):
    """Binary data whose majority class is 0 or 1 (``minority``: the share of the other class)."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, generator=g) < minority).long()
    x = (torch.rand(n, 1, 28, 28, generator=g) * 255).to(torch.uint8)
    vy = torch.arange(n_val) % 2
    vx = (torch.rand(n_val, 1, 28, 28, generator=g) * 255).to(torch.uint8)
    return {"train": {"x": x, "y": y, "group": y}, "val": {"x": vx, "y": vy, "group": vy},
            "test": {"x": x[:16], "y": y[:16], "group": y[:16]}}


def lenet():
    from debias.models import l2rw_lenet_backbone

    return l2rw_lenet_backbone(1, 1, 4, 28)


@pytest.mark.parametrize("row,extra", RW_ROWS, ids=[f"{r}{'-' + '-'.join(e.values()) if e else ''}" for r, e in RW_ROWS])
def test_batched_reweighting_steps_are_each_runs_own_steps(row, extra):
    """Three runs whose majority class differs (class 0 in two, class 1 in one): per-run class weights, hard-mining
    picks, resampled batches and meta-gradient weights, three steps, as each run alone."""
    from debias.batched import epoch_member_indices, load_member, stack_methods
    from debias.engine import RunSpec, epoch_indices, make_batch

    cls, hp = methods.get(row), {**RW_HP, **extra}
    seeds, sets = (3, 4, 5), (rw_data(0, 0.2), rw_data(1, 0.3), rw_data(2, 0.75))

    def build(seed, split):
        torch.manual_seed(seed)
        m = cls(lenet(), hp)
        m.attach(split)
        return m

    members = [build(s, d) for s, d in zip(seeds, sets)]
    alone = [build(s, d) for s, d in zip(seeds, sets)]
    batched = stack_methods(members, cls(lenet(), hp))
    batched.attach_batch(members)
    train = StackedSplits([d["train"] for d in sets])
    specs = [RunSpec(run_id=f"r{s}", seed=s, epochs=None, max_steps=3, batch_size=16, state_path=None) for s in seeds]
    cpu = torch.device("cpu")
    indices = list(epoch_member_indices(members, specs, 48, 16, 0, 3, cpu))
    streams = [list(epoch_indices(m, 48, 16, s, 0, 3, cpu)) for m, s in zip(alone, seeds)]
    for step, idx in enumerate(indices):
        logs = batched.update(train.batch(idx))
        for i, m in enumerate(alone):
            assert torch.equal(idx[i], streams[i][step])  # each run's own sampler and seed
            own = m.update(make_batch(sets[i]["train"], streams[i][step]))
            for key, value in own.items():
                got = logs[key][i] if logs[key].dim() else logs[key]
                torch.testing.assert_close(got, value.reshape(()).to(got.dtype), rtol=1e-4, atol=1e-5,
                                           msg=f"{key} step {step} run {i}")
    for i, m in enumerate(alone):
        load_member(batched, members[i], i)
        for (k, w), v in zip(members[i].modules.state_dict().items(), m.modules.state_dict().values()):
            torch.testing.assert_close(w, v, rtol=1e-4, atol=1e-5, msg=f"run {i} {k}")


def test_batched_fairface_style_runs_through_the_runner(tmp_path):
    """l2rw over two shares x two seeds (each seed its own sampled data), batch_runs 4 against one at a time."""
    def cells(root):
        out = []
        for c, share in enumerate((0.2, 0.3)):
            runs = [RunOutputs(seed=s, metrics=root / f"{c}{s}" / "metrics.json", model=root / f"{c}{s}" / "model.pt",
                               state=root / f"{c}{s}" / "state.pt") for s in (0, 1)]
            out.append(Cell({"share": share}, lambda seed, share=share: rw_data(seed, share), runs, {"data": str(share)}))
        return out

    def run(root, k):
        return train_cells(experiment="t", cells=cells(root), row="l2rw", hparams=taken_by("l2rw", RW_HP),
                           train_cfg={"batch_size": 16, "eval_every": 0, "checkpoint_every_s": 0,
                                      "channels_last": False, "deterministic": True, "batch_runs": k},
                           make_backbone=lenet, model_cfg={}, device=torch.device("cpu"), progress=False)

    alone, batched = run(tmp_path / "alone", 1), run(tmp_path / "batched", 4)
    assert [r["batched_runs"] for r in batched] == [4] * 4
    for a, b in zip(alone, batched):
        assert (a["variant"], a["seed"]) == (b["variant"], b["seed"])
        assert b["history"][-1]["weighted_loss"] == pytest.approx(a["history"][-1]["weighted_loss"], rel=1e-3, abs=1e-4)
        assert abs(a["metrics"]["test"]["accuracy"] - b["metrics"]["test"]["accuracy"]) <= 1 / 16 + 1e-9


@pytest.mark.slow
def test_batched_l2rw_grid_through_snakemake(tmp_path):
    """The L2RW grid's jobs (one per method: both shares, both seeds, each seed its own sampled data) with
    batch_runs 3: a batch of three runs spanning the two shares, then one alone; the table from all of them."""
    import pandas as pd
    from conftest import snakemake, write_config

    def batched(cfg):
        rw = cfg["reweighting"]
        rw["methods"], rw["seeds"] = ["baseline", "hardmining", "l2rw"], [0, 1]
        rw["l2rw_mnist"]["shares"] = [0.9, 0.99]
        rw["train"].update(batch_runs=3, channels_last=False)
        for hp in rw["l2rw_mnist"]["hparams"].values():
            hp["steps"] = 20
        assert (rw["shares_per_job"], len(rw["seeds"]) * len(rw["l2rw_mnist"]["shares"])) == ("all", 4)

    path = write_config(tmp_path, batched)
    snakemake(str(tmp_path / "results/tables/l2rw_mnist.csv"), "--cores", 2, "--configfile", path, check=True)
    res = tmp_path / "results"
    records = [read_json(p) for p in sorted((res / "runs/l2rw_mnist").rglob("metrics.json"))]
    assert len(records) == 12 and sorted(r["batched_runs"] for r in records) == [1] * 3 + [3] * 9
    assert len({json_key(r["data_sha256"]) for r in records if r["method"] == "l2rw"}) == 2  # two shares' splits
    table = pd.read_csv(res / "tables/l2rw_mnist.csv")
    assert set(table.method) == {"baseline", "hardmining", "l2rw"} and len(table) == 6
    assert not list((res / "state").rglob("*.pt"))


def json_key(d):
    return tuple(sorted(d.items()))


def test_a_non_finite_loss_in_one_run_of_a_batch_names_that_run_and_step(tmp_path, monkeypatch):
    from debias.engine import NonFiniteLoss
    from debias.methods.erm import Baseline

    update, calls = Baseline.update, {"n": 0}

    def poisoned(self, batch):
        logs = update(self, batch)
        calls["n"] += 1
        if calls["n"] == 5:  # the second step of the second epoch (3 steps an epoch), the batch's second run
            logs["loss"] = logs["loss"].clone()
            logs["loss"][1] = float("nan")
        return logs

    monkeypatch.setattr(Baseline, "update", poisoned)
    with pytest.raises(NonFiniteLoss, match=r"run t/cell=a/baseline/seed=4: loss = nan at epoch 1, step 4 \(step 1 "):
        train(tmp_path, "baseline", 3)
