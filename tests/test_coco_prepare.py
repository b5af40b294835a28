"""The mini COCO written from the digits, read by the pycocotools loader; prepare's outputs. (The ResNet-50's
weights: tests/test_pretrained.py.)"""

import json

import numpy as np
import pytest
import torch

from debias.data import coco
from debias.data.mini.coco import DIGIT_CATEGORY, write_embedded_coco
from debias.experiments.coco_prepare import prepare
from debias.io import sha256_file


@pytest.fixture(scope="module")
def mini_coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    counts = write_embedded_coco(root, n_train=120, n_val=80, seed=0)
    return root, counts


def test_mini_coco_has_the_real_schema_and_is_read_by_the_captions_loader(mini_coco):
    root, counts = mini_coco
    inst = json.loads((root / "annotations" / "instances_train2014.json").read_text())
    assert {"images", "annotations", "categories"} <= set(inst)
    assert {"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation"} <= set(inst["annotations"][0])
    assert 12 not in {c["id"] for c in inst["categories"]} and len(inst["categories"]) == 80
    first = inst["images"][0]
    assert (root / "train2014" / first["file_name"]).is_file()
    assert first["file_name"] == f"COCO_train2014_{first['id']:012d}.jpg"
    rec = coco.read_captions_source(root, split_seed=0)
    tr = rec.splits["train"]
    # the loader keeps exactly the images whose captions name one gender ("a person ..." ones are dropped)
    assert tr.counts() == {"man": counts["train"]["man"], "woman": counts["train"]["woman"]}
    assert len(rec.splits["val"]) + len(rec.splits["test"]) == counts["val"]["man"] + counts["val"]["woman"]
    present = {rec.category_ids[j] for j in np.flatnonzero(tr.objects.sum(0))}
    assert present <= set(DIGIT_CATEGORY.values()) and len(rec.columns) == 79
    # the planted correlation: digits 0-4 more frequent among men's images than women's
    cols = [rec.category_ids.index(DIGIT_CATEGORY[d]) for d in range(5)]
    men, women = tr.objects[tr.gender == 0][:, cols].mean(), tr.objects[tr.gender == 1][:, cols].mean()
    assert men > 1.5 * women
    for split, sub in rec.subsets.items():
        for g, ids in sub.items():
            part = coco.take(rec.splits[split], np.asarray(ids, dtype=np.int64))
            assert coco.ratio_violations(part.objects, part.gender, g).max() == 0


def test_prepare_writes_images_labels_and_a_recipe_with_their_sha256(mini_coco, tmp_path):
    root, _ = mini_coco
    section = dict(source="captions", root=str(root), split_seed=0, gamma_seed=0,
                   image=dict(short_side=32, stored=32, crop=28))
    out = [tmp_path / n for n in ("data.pt", "labels.pt", "recipe.json")]
    prepare(section, *map(str, out), threads=1)
    data, labels = torch.load(out[0]), torch.load(out[1])
    recipe = json.loads(out[2].read_text())
    assert recipe["data_sha256"] == sha256_file(out[0]) and recipe["labels_sha256"] == sha256_file(out[1])
    assert data["train"].dtype == torch.uint8 and data["train"].shape[1:] == (3, 32, 32)
    assert data["train"].shape[0] == labels["splits"]["train"]["gender"].numel()
    assert recipe["counts"]["train"]["man"] == int((labels["splits"]["train"]["gender"] == 0).sum())


def test_prepare_stops_on_a_broken_image_and_leaves_nothing(mini_coco, tmp_path):
    root, _ = mini_coco
    broken = tmp_path / "coco"
    (broken / "annotations").mkdir(parents=True)
    for f in (root / "annotations").iterdir():
        (broken / "annotations" / f.name).write_bytes(f.read_bytes())
    for split in ("train2014", "val2014"):
        (broken / split).symlink_to(root / split)
    inst = json.loads((root / "annotations" / "instances_val2014.json").read_text())
    victim = inst["images"][3]["file_name"]
    (broken / "val2014").unlink()
    (broken / "val2014").mkdir()
    for f in (root / "val2014").iterdir():
        (broken / "val2014" / f.name).write_bytes(b"garbage" if f.name == victim else f.read_bytes())
    section = dict(source="captions", root=str(broken), split_seed=0, gamma_seed=0,
                   image=dict(short_side=32, stored=32, crop=28))
    out = tmp_path / "out"
    with pytest.raises(coco.CocoFormatError, match=victim):
        prepare(section, str(out / "data.pt"), str(out / "labels.pt"), str(out / "recipe.json"), threads=1)
    assert not out.exists() or not any(out.iterdir())
