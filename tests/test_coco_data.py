"""COCO gender data: caption rule, pycocotools loader, Wang's Python-2 pickles, γ-subsets, image decoding."""

import json
import pickle

import numpy as np
import pytest
from PIL import Image

from debias.data import coco
from debias.data.mini.py2_pickle import py2_dump


# -- caption rule -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("captions, expected", [
    (["A man riding a horse.", "Someone on a horse"], 0),
    (["Two WOMEN sit on a bench"], 1),
    (["A little girl with a kite", "a kid with a kite"], 1),
    (["A boy and his mother at the beach"], None),  # both genders
    (["A person holding an umbrella", "people in the rain"], None),  # neither
    (["A woman's bag on a table"], 1),  # possessive: the word is still 'woman'
    (["The human-made boat", "mankind"], None),  # 'human', 'mankind' are not 'man'
    (["Gentlemen playing frisbee"], 0),
])
def test_caption_gender_on_hand_written_captions(captions, expected):
    assert coco.caption_gender(captions) == expected


# -- pycocotools loader -------------------------------------------------------------------------------------


def coco_fixture(tmp_path, broken=False):
    """A tiny instances + captions pair with COCO's real, non-contiguous category ids."""
    cats = [{"id": i, "name": n, "supercategory": "x"} for i, n in coco.COCO_CATEGORIES.items()]
    images = [{"id": i, "file_name": f"COCO_train2014_{i:012d}.jpg", "width": 64, "height": 48} for i in (5, 7, 9, 11)]
    anns = [
        # image 5: person + dog (18) + toothbrush (90, the last column) -> man
        {"id": 1, "image_id": 5, "category_id": 1}, {"id": 2, "image_id": 5, "category_id": 18},
        {"id": 3, "image_id": 5, "category_id": 90},
        # image 7: person + stop sign (13, right after the gap at 12) -> woman
        {"id": 4, "image_id": 7, "category_id": 1}, {"id": 5, "image_id": 7, "category_id": 13},
        # image 9: person + bicycle, but captions with both genders -> dropped
        {"id": 6, "image_id": 9, "category_id": 1}, {"id": 7, "image_id": 9, "category_id": 2},
        # image 11: a car and no person -> dropped
        {"id": 8, "image_id": 11, "category_id": 3},
    ]
    if broken:
        anns.append({"id": 99, "image_id": 7, "category_id": 12})  # 12 is not a COCO category
    for a in anns:
        a.update(bbox=[0, 0, 10, 10], area=100.0, iscrowd=0, segmentation=[[0, 0, 10, 0, 10, 10]])
    caps = [{"id": 100 + k, "image_id": i, "caption": c} for k, (i, c) in enumerate([
        (5, "A man with his dog."), (5, "Someone brushing teeth"), (7, "A woman at a stop sign"),
        (9, "A man and a woman on bikes"), (11, "A car"),
    ])]
    inst, capf = tmp_path / "instances_train2014.json", tmp_path / "captions_train2014.json"
    inst.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    capf.write_text(json.dumps({"images": images, "annotations": caps}))
    return inst, capf


def test_loader_maps_non_contiguous_ids_to_79_columns(tmp_path):
    inst, capf = coco_fixture(tmp_path)
    split, cat_ids, names = coco.read_captions_split(inst, capf)
    # columns: the 79 non-person ids in increasing order; hand-computed positions
    assert len(cat_ids) == 79 and cat_ids[0] == 2 and cat_ids[-1] == 90 and 12 not in cat_ids and 1 not in cat_ids
    assert names[cat_ids.index(13)] == "stop_sign" and cat_ids.index(13) == 10  # ids 2..11 are columns 0..9
    assert split.image_id.tolist() == [5, 7]
    assert split.gender.tolist() == [0, 1]
    assert split.objects.shape == (2, 79)
    assert np.flatnonzero(split.objects[0]).tolist() == [cat_ids.index(18), 78]
    assert np.flatnonzero(split.objects[1]).tolist() == [10]


def test_loader_names_file_and_annotation_of_an_unknown_category(tmp_path):
    inst, capf = coco_fixture(tmp_path, broken=True)
    with pytest.raises(coco.CocoFormatError, match=r"instances_train2014\.json: annotation id 99 .*category id 12"):
        coco.read_captions_split(inst, capf)


def test_loader_names_a_missing_or_malformed_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="instances_train2014.json.*coco.root"):
        coco.read_captions_split(tmp_path / "instances_train2014.json", tmp_path / "c.json")
    bad = tmp_path / "instances_val2014.json"
    bad.write_text("{not json")
    with pytest.raises(coco.CocoFormatError, match="instances_val2014.json: not a COCO annotation file"):
        coco.read_captions_split(bad, bad)
    bad.write_text("[]")  # JSON, but not an object
    with pytest.raises(coco.CocoFormatError, match="instances_val2014.json: not a COCO annotation file"):
        coco.read_captions_split(bad, bad)


def test_loader_names_the_file_and_entry_of_a_missing_key(tmp_path):
    inst, capf = coco_fixture(tmp_path)
    # the captions file given as the instances file: no categories
    with pytest.raises(coco.CocoFormatError, match=r"captions_train2014\.json: no 'categories' in the file; "
                                                    r"expected a COCO instances file"):
        coco.read_captions_split(capf, capf)
    caps = json.loads(capf.read_text())
    del caps["annotations"][0]["caption"]
    capf.write_text(json.dumps(caps))
    with pytest.raises(coco.CocoFormatError, match=r"captions_train2014\.json: annotation id \S+ \(image \d+\) has "
                                                    r"no 'caption'"):
        coco.read_captions_split(inst, capf)
    (tmp_path / "b").mkdir()
    inst2, capf2 = coco_fixture(tmp_path / "b")
    data = json.loads(inst2.read_text())
    for img in data["images"]:
        del img["file_name"]
    inst2.write_text(json.dumps(data))
    with pytest.raises(coco.CocoFormatError, match=r"instances_train2014\.json: image id \d+ has no 'file_name'"):
        coco.read_captions_split(inst2, capf2)


def test_captions_of_images_the_instances_file_lacks_are_refused(tmp_path):
    inst, capf = coco_fixture(tmp_path)
    caps = json.loads(capf.read_text())
    caps["annotations"].append({"id": 555, "image_id": 13, "caption": "A man on a horse"})  # no image 13 anywhere
    capf.write_text(json.dumps(caps))
    with pytest.raises(coco.CocoFormatError, match=r"captions_train2014\.json: 1 of 6 captions name an image that is "
                                                    r"not in .*instances_train2014\.json's 'images' \(first: "
                                                    r"annotation id 555, image id 13\)"):
        coco.read_captions_split(inst, capf)


def test_val_test_split_is_deterministic_and_disjoint():
    a, b = coco.split_val_test(11, seed=3)
    a2, b2 = coco.split_val_test(11, seed=3)
    assert a.tolist() == a2.tolist() and b.tolist() == b2.tolist()
    assert len(a) == 5 and len(b) == 6 and sorted(a.tolist() + b.tolist()) == list(range(11))


# -- γ-subsets ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [1, 2, 3, 1.5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_gamma_subset_satisfies_its_ratio_bound(gamma, seed):
    rng = np.random.default_rng(seed)
    n, k = 600, 12
    gender = (rng.random(n) < 0.3).astype(np.int64)  # 70 % men, as COCO
    p = rng.uniform(0.02, 0.4, (2, k))  # object frequencies that differ by gender
    objects = (rng.random((n, k)) < p[gender]).astype(np.uint8)
    objects[:5, -1] = 1
    objects[5:, -1] = 0  # an object only some men have
    gender[:5] = 0
    keep = coco.gamma_subset(objects, gender, gamma, seed=seed)
    assert len(np.unique(keep)) == len(keep) and keep.min() >= 0 and keep.max() < n
    assert len(keep) > n // 5
    # independent count, object by object
    for c in range(k):
        man = sum(1 for i in keep if objects[i, c] and gender[i] == 0)
        woman = sum(1 for i in keep if objects[i, c] and gender[i] == 1)
        assert max(man, woman) <= gamma * min(man, woman), (c, man, woman)


def test_gamma_subset_keeps_a_set_that_already_satisfies_the_bound():
    objects = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], np.uint8)
    gender = np.array([0, 1, 0, 1])
    assert coco.gamma_subset(objects, gender, 1).tolist() == [0, 1, 2, 3]


# -- Wang et al.'s Python-2 pickles -------------------------------------------------------------------------


def wang_fixture(tmp_path, broken_entry=None, broken=("gender", [1, 1])):
    names = {j: ("café" if j == 3 else f"obj{j}") for j in range(79)}  # a non-ASCII byte needs latin1
    py2_dump({"id2object": names, "object2id": {v: k for k, v in names.items()}}, tmp_path / "object_id.map")
    rng = np.random.default_rng(0)
    sizes = {"train": 40, "val": 20, "test": 20}
    first_id = {"train": 0, "val": 200, "test": 300}  # image ids are unique; val, test: halves of val2014
    for split, n in sizes.items():
        entries = []
        for i in range(first_id[split], first_id[split] + n):
            objs = [0] * 79
            objs[int(rng.integers(79))] = 1
            g = [1, 0] if i % 3 else [0, 1]
            entries.append({"file_name": f"COCO_{'train' if split == 'train' else 'val'}2014_{i:012d}.jpg",
                            "image_id": i, "objects": objs, "gender": g})
        if broken_entry is not None and split == "val":
            entries[broken_entry][broken[0]] = broken[1]
        py2_dump(entries, tmp_path / f"{split}.data")
        for g in coco.GAMMAS:
            py2_dump(set(range(0, n, g + 1)), tmp_path / f"{split}_ratio_{g}.ids")
    return sizes


def test_wang_pickles_are_read_with_latin1(tmp_path):
    sizes = wang_fixture(tmp_path)
    with pytest.raises(UnicodeDecodeError):  # the default (ASCII) decoding fails: latin1 is needed
        pickle.loads((tmp_path / "object_id.map").read_bytes())
    rec = coco.read_wang_source(tmp_path)
    assert rec.columns[3] == "café" and len(rec.columns) == 79
    assert {s: len(sp) for s, sp in rec.splits.items()} == sizes
    assert rec.splits["train"].gender[:3].tolist() == [1, 0, 0]
    assert rec.subsets["val"][2] == list(range(0, 20, 3))


@pytest.mark.parametrize("key,value,message", [
    ("gender", [1, 1], r"gender must be one-hot \[1, 0\] or \[0, 1\], found \[1, 1\]"),
    ("gender", 1, r"gender must be one-hot \[1, 0\] or \[0, 1\], found 1"),
    ("image_id", "abc", r"image_id must be an integer, found 'abc'"),
    ("objects", ["0", "1"] * 39 + ["0"], r"objects must be 79 values 0/1, found <U1 values \['0', '1'\]"),
    ("objects", [0, 1], r"objects must be 79 values 0/1, found shape \(2,\)"),
    ("image_id", 70, r"image_id 70 is not the file name's 207; expected the COCO id the file is named by"),
])
def test_wang_broken_entry_names_file_entry_and_value(tmp_path, key, value, message):
    wang_fixture(tmp_path, broken_entry=7, broken=(key, value))
    with pytest.raises(coco.CocoFormatError, match=r"val\.data, entry 7 \(COCO_val2014_000000000207\.jpg\): " + message):
        coco.read_wang_source(tmp_path)


def test_wang_val_and_test_sharing_images_are_refused_naming_both_files(tmp_path):
    wang_fixture(tmp_path)
    val = pickle.loads((tmp_path / "val.data").read_bytes(), encoding="latin1")
    test = pickle.loads((tmp_path / "test.data").read_bytes(), encoding="latin1")
    py2_dump(test[:-2] + val[5:7], tmp_path / "test.data")  # two val images also in test
    with pytest.raises(coco.CocoFormatError, match=r"val\.data and .*test\.data share 2 image\(s\) \(image_id 205, 206\); "
                                                   r"expected disjoint splits"):
        coco.read_wang_source(tmp_path)


def test_wang_malformed_pickle_and_bad_ids(tmp_path):
    wang_fixture(tmp_path)
    (tmp_path / "test.data").write_bytes(b"\x80\x02garbage")
    with pytest.raises(coco.CocoFormatError, match=r"test\.data: not a readable pickle"):
        coco.read_wang_source(tmp_path)
    wang_fixture(tmp_path)
    py2_dump({0, 1, 500}, tmp_path / "train_ratio_3.ids")
    with pytest.raises(coco.CocoFormatError, match=r"train_ratio_3\.ids: positions \['500'\] outside 0\.\.39"):
        coco.read_wang_source(tmp_path)


# -- images -------------------------------------------------------------------------------------------------


def test_decode_resizes_the_short_side_and_crops_the_centre(tmp_path):
    img = np.zeros((60, 180, 3), np.uint8)  # three 60x60 squares: red, green, blue
    img[:, :60, 0] = 255
    img[:, 60:120, 1] = 255
    img[:, 120:, 2] = 255
    path = tmp_path / "COCO_val2014_000000000001.jpg"
    Image.fromarray(img).save(path, format="PNG")  # PNG bytes under a .jpg name: PIL reads by content
    out = coco.decode_resize(path, short_side=20, size=20)
    assert out.shape == (3, 20, 20) and out.dtype == np.uint8
    inner = out[:, :, 2:-2]  # bilinear resampling blends the square's border with its neighbours
    assert (inner[1] == 255).all() and (inner[0] == 0).all() and (inner[2] == 0).all()  # only the middle square


def test_decode_split_names_the_entry_of_a_missing_or_broken_image(tmp_path):
    (tmp_path / "val2014").mkdir()
    Image.new("RGB", (30, 20)).save(tmp_path / "val2014" / "COCO_val2014_000000000001.jpg")
    (tmp_path / "val2014" / "COCO_val2014_000000000002.jpg").write_bytes(b"not a jpeg")
    split = coco.Split(["COCO_val2014_000000000001.jpg", "COCO_val2014_000000000002.jpg"], np.array([1, 2]),
                       np.zeros((2, 79), np.uint8), np.array([0, 1]))
    with pytest.raises(coco.CocoFormatError, match=r"entry 1 \(image id 2\):.*000000000002.jpg does not decode"):
        coco.decode_split(split, tmp_path, 16, 16, threads=1, progress=False)
    split.file_name[1] = "COCO_val2014_000000000003.jpg"
    with pytest.raises(FileNotFoundError, match=r"entry 1 .*000000000003.jpg missing \(config key coco\.root"):
        coco.decode_split(split, tmp_path, 16, 16, threads=1, progress=False)
    split.file_name[1] = "000000000002.jpg"  # a COCO 2017 name
    with pytest.raises(coco.CocoFormatError, match=r"^test split, entry 1 \(image id 2\): image file name "
                                                   r"'000000000002\.jpg' is not COCO's COCO_<split><year>"):
        coco.decode_split(split, tmp_path, 16, 16, threads=1, progress=False, where="test split, ")
