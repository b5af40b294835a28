"""COCO training (experiments/coco_train.py) resumes a killed run to the same numbers."""

import json

import pytest
import torch

from debias import methods
from debias.data.image_pipeline import Pipeline
from debias.data.mini.coco import write_embedded_coco
from debias.experiments.coco_prepare import prepare
from debias.experiments.coco_train import train

IMAGE = dict(short_side=32, stored=32, crop=28)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    write_embedded_coco(root, n_train=120, n_val=80, seed=0)
    section = dict(source="captions", root=str(root), split_seed=0, gamma_seed=0, image=IMAGE)
    data, labels = root / "data.pt", root / "labels.pt"
    prepare(section, str(data), str(labels), str(root / "recipe.json"), threads=1)
    return str(data), str(labels)


class Killed(Exception):
    pass


def run(prepared, out, aug="mixup", device="cpu"):
    data, labels = prepared
    out.mkdir(parents=True, exist_ok=True)
    hp = {"epochs": 4, "weight_decay": 1e-5, "loss": "bce", "train_layers": "all", "alpha": 1.0, "lam": "sample"}
    train(hparams=hp, model={"arch": "small_resnet", "widths": [4, 8]},
          train_cfg={"batch_size": 32, "eval_batch_size": 64, "checkpoint_every_s": 0, "channels_last": False,
                     "autocast": True, "deterministic": True},
          image=IMAGE, split="none", aug=aug, pairing="random", lr=1e-2, seeds=[3], data=data, labels=labels,
          metrics=[str(out / "metrics.json")], logits=[str(out / "logits.pt")], states=[str(out / "state.pt")],
          device=device, progress=False)
    return json.loads((out / "metrics.json").read_text()), torch.load(out / "logits.pt")


CUDA = pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(),
                                                                         reason="needs a CUDA device")])


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_killed_run_resumes_from_its_last_epoch_to_the_same_numbers(prepared, tmp_path, monkeypatch, device):
    """On a GPU too (bf16 autocast, deterministic kernels): the resumed run's numbers are bit-identical."""
    ref, ref_logits = run(prepared, tmp_path / "through", device=device)

    calls = {"n": 0}
    view = Pipeline.train_view

    def dying_view(self, *a, **kw):  # dies in the third epoch (4 steps per epoch of ~100 images)
        calls["n"] += 1
        if calls["n"] == 10:
            raise Killed
        return view(self, *a, **kw)

    monkeypatch.setattr(Pipeline, "train_view", dying_view)
    with pytest.raises(Killed):
        run(prepared, tmp_path / "killed", device=device)
    assert (tmp_path / "killed" / "state.pt").is_file() and not (tmp_path / "killed" / "metrics.json").exists()
    monkeypatch.setattr(Pipeline, "train_view", view)
    torch.manual_seed(999)  # another global RNG state must not matter: the state restores it
    got, got_logits = run(prepared, tmp_path / "killed", device=device)

    assert got["resumed_from_epoch"] == 2 and ref["resumed_from_epoch"] == 0
    assert got["history"] == ref["history"] and got["selected"] == ref["selected"]
    assert got["metrics"] == ref["metrics"]
    for split in ("train", "val", "test"):
        assert torch.equal(got_logits[split], ref_logits[split]), split
    assert not (tmp_path / "killed" / "state.pt").exists()  # removed once metrics.json is written


def test_selection_never_picks_an_epoch_the_method_does_not_allow(prepared, tmp_path, monkeypatch):
    """With the epoch selected by val macro-F1 made unselectable (``Method.selectable``, a warm-up's hook), the run
    selects the best of the other epochs (ties to the later), computed here from its history."""
    ref, _ = run(prepared, tmp_path / "all")
    taken = ref["selected"]["epoch"]
    monkeypatch.setattr(methods.get("mixup"), "selectable", lambda self, epoch: epoch != taken,
                        raising=False)
    got, _ = run(prepared, tmp_path / "without")
    assert got["history"] == ref["history"]
    f1 = {h["epoch"]: h["val"]["macro_f1"] for h in got["history"] if h["epoch"] != taken}
    assert got["selected"]["epoch"] == max(f1, key=lambda e: (f1[e], e))
    assert got["selected"]["score"] == f1[got["selected"]["epoch"]]
