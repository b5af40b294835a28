"""A saved training state is resumed only onto the very same run: same network, same images, same split.

Each case trains a reweighting cell until it is "killed" after its first epoch (a state file stays behind),
changes one thing, and reruns: the rerun must start from epoch 0. The control case changes nothing and must
resume from epoch 1.
"""

import json

import pytest
import torch

from debias.experiments import reweighting
from debias.io import sha256_file, torch_save
from debias.methods.erm import Baseline

SECTION = {"n_train": 40, "n_val_per_class": 2, "n_test_per_class": 5, "val_from_budget": False}
HP = {"steps": 6, "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0}
TRAIN = {"batch_size": 10, "eval_every": 0, "checkpoint_every_s": 0, "channels_last": False, "deterministic": True}
MODEL = {"width": 2}


class Killed(Exception):
    pass


def write_pool(path, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(80) % 2
    pool = {"train_x": torch.randint(0, 256, (80, 1, 28, 28), dtype=torch.uint8, generator=g), "train_y": y,
            "test_x": torch.randint(0, 256, (20, 1, 28, 28), dtype=torch.uint8, generator=g), "test_y": y[:20]}
    torch_save(pool, path)


def run(tmp_path, pool, split, model=MODEL, die_after=None, monkeypatch=None):
    out = tmp_path / "run"
    if die_after is not None:
        calls = {"n": 0}
        update = Baseline.update

        def dying(self, batch):
            calls["n"] += 1
            if calls["n"] > die_after:
                raise Killed
            return update(self, batch)

        monkeypatch.setattr(Baseline, "update", dying)
    try:
        reweighting.train(experiment="l2rw_mnist", shares=["0.900"], row="baseline", hparams=HP,
                          train_cfg=TRAIN, model=model, seeds=[0], pool_file=str(pool), split_files=[str(split)],
                          metrics=[out / "metrics.json"], models=[out / "model.pt"], states=[tmp_path / "state.pt"],
                          device="cpu")
    finally:
        if monkeypatch is not None:
            monkeypatch.undo()
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture
def data(tmp_path):
    pool, split = tmp_path / "pool.pt", tmp_path / "split.pt"
    write_pool(pool, seed=0)
    reweighting.build_splits(str(pool), SECTION, 0.9, [0], str(split))
    return pool, split


def killed_after_one_epoch(tmp_path, pool, split, monkeypatch):
    with pytest.raises(Killed):  # 36 training images, batch 10: 4 steps per epoch; dies in the second epoch
        run(tmp_path, pool, split, die_after=5, monkeypatch=monkeypatch)
    assert (tmp_path / "state.pt").is_file()


def test_unchanged_run_resumes_and_records_every_data_hash(tmp_path, data, monkeypatch):
    pool, split = data
    killed_after_one_epoch(tmp_path, pool, split, monkeypatch)
    rec = run(tmp_path, pool, split)
    assert rec["resumed_from_epoch"] == 1
    assert rec["data_sha256"] == {"pool": sha256_file(pool), "split": sha256_file(split)}
    assert rec["model"] == MODEL and rec["determinism"]["deterministic"] is True
    assert rec["determinism"]["cudnn_allow_tf32"] is False  # float32 convolutions in float32 on a GPU too


def test_other_network_width_is_not_resumed(tmp_path, data, monkeypatch):
    pool, split = data
    killed_after_one_epoch(tmp_path, pool, split, monkeypatch)
    assert run(tmp_path, pool, split, model={"width": 3})["resumed_from_epoch"] == 0


def test_other_pool_images_are_not_resumed(tmp_path, data, monkeypatch):
    pool, split = data
    killed_after_one_epoch(tmp_path, pool, split, monkeypatch)
    write_pool(pool, seed=1)  # same labels, so the split file stays byte-identical; other images
    assert sha256_file(split) == json.loads(split.with_suffix(".json").read_text())["sha256"]
    assert run(tmp_path, pool, split)["resumed_from_epoch"] == 0


def test_other_split_is_not_resumed(tmp_path, data, monkeypatch):
    pool, split = data
    killed_after_one_epoch(tmp_path, pool, split, monkeypatch)
    reweighting.build_splits(str(pool), {**SECTION, "n_val_per_class": 3}, 0.9, [0], str(split))
    assert run(tmp_path, pool, split)["resumed_from_epoch"] == 0


def test_a_state_from_another_device_is_not_resumed(tmp_path, data, monkeypatch):
    """The device type is part of the fingerprint: a run killed on the CPU and rerun on a GPU starts afresh (the
    GPU run would otherwise continue from CPU numbers and be recorded as a CUDA run). Rerunning on a second device
    type is simulated by rewriting the state's fingerprint to the one the same run gets on 'cuda'."""
    from debias import runner

    pool, split = data
    killed_after_one_epoch(tmp_path, pool, split, monkeypatch)
    seen = []
    real = runner.fingerprint
    monkeypatch.setattr(runner, "fingerprint", lambda *parts: seen.append(parts) or real(*parts))
    assert run(tmp_path, pool, split)["resumed_from_epoch"] == 1  # control: same device, resumed
    (parts,) = [p for p in seen if len(p) > 1]
    assert parts[-1] == "cpu"
    killed_after_one_epoch(tmp_path, pool, split, monkeypatch)
    state = torch.load(tmp_path / "state.pt", weights_only=False)
    state["fingerprint"] = real(*parts[:-1], "cuda")
    torch_save(state, tmp_path / "state.pt")
    assert run(tmp_path, pool, split)["resumed_from_epoch"] == 0


def test_run_ids_name_every_part_once_and_no_empty_one():
    from debias.runner import run_id

    assert run_id("colored_mnist", {"sigma2": 0.02}, "lnl", 3) == "colored_mnist/sigma2=0.02/lnl/seed=3"
    assert run_id("fairface", {"share": 0.9, "padding": 0.25}, "l2rw", 0) == "fairface/share=0.9/padding=0.25/l2rw/seed=0"
    assert run_id("waterbirds", {}, "erm", 0) == "waterbirds/erm/seed=0"


def test_the_same_content_saved_twice_has_the_same_sha256(tmp_path):
    """A prepared file's sha256 goes into every fingerprint and metrics.json: it must depend on the content alone,
    not on the temporary file it was written through."""
    data = {"x": torch.arange(12, dtype=torch.uint8).reshape(3, 4), "y": torch.tensor([0, 1, 0])}
    torch_save(data, tmp_path / "a.pt")
    torch_save(data, tmp_path / "a.pt")  # again, over itself: another temporary name
    first = sha256_file(tmp_path / "a.pt")
    torch_save(data, tmp_path / "a.pt")
    assert sha256_file(tmp_path / "a.pt") == first
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["x"], data["x"])
