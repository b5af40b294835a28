"""The task interface: every task gives what it declares, a method is refused where a task cannot feed it, every
method a task can feed takes a step on it, and the multi-label losses are the textbook formulas."""

import math

import numpy as np
import pytest
import torch

from debias import methods, tasks
from debias.experiments import matrix
from debias.losses import mean_cross_entropy, per_example_loss
from debias.runner import train_cells

MODELS = {  # the mini networks of each task (config/mini.yaml), small enough for a step in milliseconds
    "colored_mnist": {"width": 4, "n_bins": 8, "mean": [0.5] * 3, "std": [0.25] * 3},
    "fairface": {"width": 2}, "l2rw_mnist": {"width": 2},
    "waterbirds": {"arch": "small_resnet", "widths": [4, 8, 8]},
    "coco": {"arch": "small_resnet", "widths": [4, 8, 8]},
}
CFG = {"train": {"channels_last": False, "eval_batch_size": 64}, "image": {"crop": 28}}


def hp_for(name: str) -> dict:
    """Every key the method needs, with a value that makes sense for a one-step smoke run."""
    values = {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.0, "alpha": 1.0, "entropy_weight": 0.01,
              "grl_factor": 0.1, "ramp_variable": "progress", "robust_step_size": 0.01, "generalization_adjustment": 0.0,
              "reweight_groups": False, "trace": "last_layer", "multipliers": "per_sample", "dual_step_size": 0.01,
              "epsilon_percentile": 50, "warmup_epochs": 0, "loss": "ce", "train_layers": "all", "pairing": "random",
              "label_weights": "area", "ties": "loss", "meta_lr": 1.0}
    return {k: values[k] for k in methods.get(name).hparams}


@pytest.mark.parametrize("name", tasks.names())
def test_each_task_declares_what_its_synthetic_split_carries(name):
    task = tasks.get(name)
    sample = task.synthetic(6, MODELS[name])
    assert set(task.fields["train"]) <= set(sample), (name, sorted(sample))
    assert task.label_kind in tasks.LABEL_KINDS
    assert set(task.selection_rules) <= {"last", "val_average", "val_worst_group", "val_macro_f1"}
    if task.label_kind == "multi":
        assert sample["y"].is_floating_point() and sample["y"].dim() == 2
    else:
        assert not sample["y"].is_floating_point() and sample["y"].dim() == 1


def test_a_method_is_refused_naming_the_method_the_dataset_and_what_is_missing():
    with pytest.raises(tasks.TaskMismatch, match=r"method 'lnl' cannot run on dataset 'fairface': no batch field "
                                                 r"'bias'.*its training split has x, y, group, index"):
        tasks.check_method(methods.get("lnl"), {}, tasks.get("fairface"))
    with pytest.raises(tasks.TaskMismatch, match=r"'fisher_flat' cannot run on dataset 'coco': multi-label data; "
                                                 r"method 'fisher_flat' takes single-label data only"):
        tasks.check_method(methods.get("fisher_flat"), {}, tasks.get("coco"))
    # a field the hyperparameters add: mixup paired by a field the task lacks
    with pytest.raises(tasks.TaskMismatch, match="no batch field 'place'"):
        tasks.check_method(methods.get("mixup"), {"pairing": "balanced", "pair_field": "place"}, tasks.get("coco"))
    tasks.check_method(methods.get("mixup"), {"pairing": "balanced"}, tasks.get("coco"))  # group: it has one


def test_the_runner_refuses_before_any_run_starts(tmp_path):
    from debias.runner import Cell, RunOutputs

    def never(seed):
        raise AssertionError("splits loaded for a refused method")

    run = RunOutputs(seed=0, metrics=tmp_path / "m.json", model=tmp_path / "m.pt", state=tmp_path / "s.pt")
    with pytest.raises(tasks.TaskMismatch, match="'lnl' cannot run on dataset 'l2rw_mnist'"):
        train_cells(experiment="l2rw_mnist", cells=[Cell({}, never, [run], {})], row="lnl",
                    hparams={"epochs": 1, **hp_for("lnl")}, train_cfg={"batch_size": 4, "eval_every": 0,
                                                                         "checkpoint_every_s": 0},
                    make_backbone=None, model_cfg={}, device=torch.device("cpu"), task=tasks.get("l2rw_mnist"))
    assert not run.metrics.exists()


CELLS = [(t, m) for t in tasks.names() for m in methods.names()
         if tasks.mismatch(methods.get(m), hp_for(m), tasks.get(t)) is None]


@pytest.mark.parametrize("name,method", CELLS)
def test_every_method_a_task_can_feed_takes_a_finite_step_on_it(name, method):
    task = tasks.get(name)
    torch.manual_seed(0)
    split = task.synthetic(12, MODELS[name])
    splits = {"train": split, "val": task.synthetic(8, MODELS[name]), "test": task.synthetic(8, MODELS[name])}
    hp = hp_for(method)
    if method == "fisher_flat":
        hp["epsilon"] = 0.5  # constrained from the first step (no warm-up to take a percentile from)
    if method in ("nomix", "mixup", "cutmix"):
        hp["loss"] = "bce" if task.label_kind == "multi" else "ce"
    m = methods.get(method)(task.backbone(MODELS[name], splits), hp)
    m.attach(splits)
    if hasattr(m, "on_epoch_start"):
        m.on_epoch_start(0, 1, 1)
    view = task.train_view(CFG)
    from debias.batching import make_batch

    batch = make_batch(split, torch.arange(12), view=view)
    logs = m.update(batch)
    assert all(math.isfinite(float(v)) for v in logs.values() if torch.as_tensor(v).numel() == 1), logs
    out = m.predict(batch["x"])
    assert out.shape[0] == 12


def test_multi_label_loss_is_the_mean_over_classes_of_the_sigmoid_cross_entropy():
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(5, 3)), (rng.random((5, 3)) < 0.4).astype(float)
    p = 1.0 / (1.0 + np.exp(-z))
    expected = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=1)
    got = per_example_loss(torch.tensor(z), torch.tensor(y))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(float(mean_cross_entropy(torch.tensor(z), torch.tensor(y))), expected.mean(), rtol=1e-10)
    # class indices keep the softmax cross-entropy
    idx = torch.tensor([0, 2, 1, 1, 0])
    soft = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(per_example_loss(torch.tensor(z), idx).numpy(), -np.log(soft[range(5), idx.numpy()]))


def test_matrix_adapters_hold_out_val_from_test_and_a_group_balanced_meta_set():
    n = 50
    test = {"x": torch.arange(n).float()[:, None], "y": torch.arange(n) % 10, "group": (torch.arange(n) % 5 == 0).long()}
    splits = {"train": dict(test), "test": test}
    out = matrix.adapt_splits(splits, {"val_from_test": 0.2, "meta_per_group": 3})
    val_x, test_x = set(out["val"]["x"][:, 0].tolist()), set(out["test"]["x"][:, 0].tolist())
    assert len(val_x) == 10 and len(test_x) == 40 and not val_x & test_x and val_x | test_x == set(range(n))
    meta_groups = out["meta"]["group"].tolist()
    assert sorted(meta_groups) == [0, 0, 0, 1, 1, 1] or sorted(meta_groups) == [0, 0, 0] + [1] * meta_groups.count(1)
    assert set(out["meta"]["x"][:, 0].tolist()) <= val_x
    again = matrix.adapt_splits(splits, {"val_from_test": 0.2, "meta_per_group": 3})
    assert torch.equal(again["val"]["x"], out["val"]["x"])  # the same for every method and seed


def test_matrix_hyperparameters_take_the_schedule_keys_a_method_knows():
    schedule = {"epochs": 3, "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0, "loss": "ce", "select": ["last"]}
    _, hp = matrix.method_hparams("hardmining", schedule, {"ties": "loss"})
    assert "loss" not in hp and hp["ties"] == "loss" and hp["lr"] == 0.1
    _, hp = matrix.method_hparams("mixup", schedule, {"alpha": 1.0})
    assert hp["loss"] == "ce" and hp["momentum"] == 0.9
    assert matrix.cell_status("fairface", "lnl", {"schedule": schedule}, {}).startswith("n/a: no batch field 'bias'")
    assert matrix.cell_status("colored_mnist", "l2rw", {"schedule": schedule}, {}) == (
        "n/a: no validation split for the method's clean meta set")
    assert matrix.cell_status("colored_mnist", "l2rw", {"schedule": schedule, "val_from_test": 0.1,
                                                        "meta_per_group": 5}, {}) == "ok"
    fisher = {"trace": "last_layer", "multipliers": "per_sample", "dual_step_size": 0.01, "epsilon_percentile": 50,
              "warmup_epochs": 1}
    assert matrix.cell_status("waterbirds", "fisher_flat", {"schedule": {**schedule, "epochs": 2}}, fisher) == (
        "n/a: the dataset's 2 epochs leave fisher_flat no epoch after its warm-up to select (it needs 3)")
    assert matrix.cell_status("waterbirds", "fisher_flat", {"schedule": schedule}, fisher) == "ok"
