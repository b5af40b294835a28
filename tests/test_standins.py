"""The rehearsal's stand-ins (tools/rehearsal/): the real counts they are built from, the generalised mini writers
(exact counts per group, the other Waterbirds layout, images written by worker processes), Wang's split files and
the generator's refusals. The full config on the stand-ins: tests/test_rehearsal.py."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools/rehearsal"))
import real_counts  # noqa: E402

GENERATOR = ROOT / "tools/rehearsal/make_standins.py"


def tree_digest(folder) -> str:
    h = hashlib.sha256()
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(folder)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def test_real_counts_are_the_published_ones():
    from debias.data.coco_download import WANG_TRAIN_COUNTS
    from debias.data.waterbirds import PUBLISHED_COUNTS

    assert [sum(real_counts.MNIST[s]) for s in ("train", "test")] == [60000, 10000]
    assert [sum(real_counts.FAIRFACE[s].values()) for s in ("train", "val")] == [86744, 10954]
    assert real_counts.WATERBIRDS == {s: list(c) for s, c in PUBLISHED_COUNTS.items()}
    assert real_counts.total(real_counts.WATERBIRDS) == 11788
    paper = yaml.safe_load((ROOT / "config/paper_values.yaml").read_text())["coco_splits"]["values"]
    assert real_counts.COCO == {"train": [paper["no balance (train)"]["man"], paper["no balance (train)"]["woman"]],
                                "val": [paper["val"]["man"], paper["val"]["woman"]],
                                "test": [paper["test"]["man"], paper["test"]["woman"]]}
    assert sum(real_counts.COCO["train"]) == WANG_TRAIN_COUNTS["n"] == 22826
    assert [sum(real_counts.COCO[s]) for s in ("val", "test")] == [5367, 5473]


def test_small_counts_divide_every_group_and_keep_at_least_one():
    assert real_counts.counts("mnist", "small") == real_counts.MNIST
    ff = real_counts.counts("fairface", "small")
    assert ff["train"]["White"] == round(16527 / 4) and ff["val"]["Middle Eastern"] == round(1209 / 4)
    assert real_counts.counts("waterbirds", "small")["train"] == [round(3498 / 400), 1, 1, round(1057 / 400)]
    assert real_counts.counts("coco", "full") == real_counts.COCO
    with pytest.raises(ValueError, match=r"--counts 'tiny': expected one of small, full"):
        real_counts.counts("coco", "tiny")
    with pytest.raises(ValueError, match=r"dataset 'cifar': expected one of mnist, fairface, waterbirds, coco"):
        real_counts.counts("cifar", "small")


def test_the_small_fairface_and_mnist_hold_what_the_full_config_draws():
    """The full config's largest draws (share 0.99 of FairFace's budget, 0.995 of the L2RW grid's; the balanced test
    sets) fit the small counts: the rehearsal changes none of these keys."""
    from debias.data.imbalance import class_budget

    rw = yaml.safe_load((ROOT / "config/config.yaml").read_text())["reweighting"]
    ff, mnist = real_counts.counts("fairface", "small"), real_counts.counts("mnist", "small")
    white = ff["train"]["White"]
    others = sum(ff["train"].values()) - white
    minor, major = class_budget(rw["fairface"]["n_train"], max(rw["fairface"]["shares"]))
    assert white >= major and others >= class_budget(rw["fairface"]["n_train"], min(rw["fairface"]["shares"]))[0]
    assert min(ff["val"]["White"], sum(ff["val"].values()) - ff["val"]["White"]) >= rw["fairface"]["n_test_per_class"]
    assert mnist["train"][9] >= class_budget(rw["l2rw_mnist"]["n_train"], max(rw["l2rw_mnist"]["shares"]))[1]
    assert min(mnist["test"][4], mnist["test"][9]) >= rw["l2rw_mnist"]["n_test_per_class"]


def test_mnist_per_class_counts_are_written_exactly(tmp_path):
    from debias.data.mini.mnist import write_embedded_mnist
    from debias.data.mnist import read_mnist

    per_class = {"train": [30, 0, 5, 1, 2, 3, 4, 5, 6, 7], "test": [1] * 10}
    write_embedded_mnist(tmp_path, per_class=per_class)
    data = read_mnist(tmp_path)
    assert {s: np.bincount(y.numpy(), minlength=10).tolist() for s, (_, y) in data.items()} == per_class
    with pytest.raises(ValueError, match=r"per_class \[1, 2\]: expected one count for each of the 10 classes"):
        write_embedded_mnist(tmp_path / "bad", per_class={"train": [1, 2], "test": [1] * 10})


def test_fairface_race_counts_are_written_exactly_and_read_by_the_release_reader(tmp_path):
    from collections import Counter

    from debias.data.fairface import label_csv, read_labels
    from debias.data.mini.fairface import write_embedded_fairface

    counts = {"train": {"White": 7, "Black": 3, "Latino_Hispanic": 2}, "val": {"White": 2, "Indian": 1}}
    write_embedded_fairface(tmp_path, "img", size=32, race_counts=counts)
    for split in counts:
        rows = read_labels(label_csv(tmp_path, split), tmp_path / "img")
        assert dict(Counter(r["race"] for r in rows)) == counts[split]
    with pytest.raises(ValueError, match=r"race_counts\['train'\]: races \['Martian'\] are not FairFace's; expected"):
        write_embedded_fairface(tmp_path / "bad", "img", race_counts={"train": {"Martian": 1}, "val": {}})


def test_waterbirds_group_counts_in_the_wilds_layout_and_images_by_workers_are_the_same_bytes(tmp_path):
    from debias.data.mini.jpeg import JpegWriter
    from debias.data.mini.waterbirds import write_embedded_waterbirds
    from debias.data.waterbirds import group_counts, metadata_file, read_metadata

    counts = {"train": [300, 1, 2, 3], "val": [1, 1, 1, 1], "test": [2, 2, 1, 1]}  # more landbirds than digits: reused
    write_embedded_waterbirds(tmp_path / "one", size=24, counts=counts, layout="wilds")
    with JpegWriter(2) as jpegs:
        write_embedded_waterbirds(tmp_path / "two", size=24, counts=counts, layout="wilds", jpegs=jpegs)
    meta = read_metadata(metadata_file(tmp_path / "one", "wilds"))
    assert group_counts(meta) == counts
    assert all((meta.path.parent / name).is_file() for name in meta.img_filename)
    assert tree_digest(tmp_path / "one") == tree_digest(tmp_path / "two")
    with pytest.raises(ValueError, match=r"layout 'cub': expected one of group_dro, wilds"):
        write_embedded_waterbirds(tmp_path / "bad", layout="cub")


def test_wang_split_files_from_a_coco_folder_are_read_by_the_wang_reader(tmp_path):
    from debias.data import coco
    from debias.data.mini.coco import write_embedded_coco
    from wang_splits import FIRST_COLUMNS, LAST_COLUMN, write_wang_splits

    write_embedded_coco(tmp_path, genders={"train": [30, 12], "val": [20, 9]}, size=32, cell=12, neutral_share=0.0)
    written = write_wang_splits(tmp_path, tmp_path / "wang", val_genders=[11, 4])
    rec = coco.read_wang_source(tmp_path / "wang")
    assert {s: [sp.counts()["man"], sp.counts()["woman"]] for s, sp in rec.splits.items()} == {
        "train": [30, 12], "val": [11, 4], "test": [9, 5]}
    assert rec.columns[:4] == list(FIRST_COLUMNS) and rec.columns[-1] == LAST_COLUMN and len(set(rec.columns)) == 79
    assert not set(rec.splits["val"].image_id) & set(rec.splits["test"].image_id)
    assert all(n.startswith("COCO_val2014_") for s in ("val", "test") for n in rec.splits[s].file_name)
    for split, sub in rec.subsets.items():
        for gamma, ids in sub.items():
            assert len(ids) == written[f"{split}_ratio_{gamma}"]
            part = coco.take(rec.splits[split], np.asarray(ids, dtype=np.int64))
            assert coco.ratio_violations(part.objects, part.gender, gamma).max(initial=0) == 0
    # the same images, objects and genders as the captions source reads from the annotation files
    captions, _, names = coco.read_captions_split(tmp_path / "annotations/instances_train2014.json",
                                                  tmp_path / "annotations/captions_train2014.json")
    wang_train = rec.splits["train"]
    assert wang_train.image_id.tolist() == captions.image_id.tolist()
    assert (wang_train.objects == captions.objects[:, [names.index(c) for c in rec.columns]]).all()


def test_the_generator_refuses_a_dataset_folder_that_has_files(tmp_path):
    (tmp_path / "coco").mkdir()
    (tmp_path / "coco" / "old.json").write_text("{}")
    proc = subprocess.run([sys.executable, str(GENERATOR), str(tmp_path), "--datasets", "coco"], capture_output=True,
                          text=True)
    assert proc.returncode != 0
    assert f"{tmp_path / 'coco'}: already has files; expected a new or empty folder for the coco stand-in" in proc.stderr
    proc = subprocess.run([sys.executable, str(GENERATOR), str(tmp_path / "new"), "--workers", "0"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "--workers 0: expected 1 or more" in proc.stderr
