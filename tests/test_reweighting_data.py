import csv

import numpy as np
import pytest
import torch

from debias.data import fairface
from debias.data.imbalance import class_budget, imbalanced_split, official_seed
from debias.data.mini.fairface import write_embedded_fairface

IMAGE_DIR = "fairface-img-margin025-trainval"


def test_official_seeds():
    assert [official_seed(k) for k in range(4)] == [0, 56789, 13578, 70367]
    assert class_budget(5000, 0.9) == (500, 4500) and class_budget(3600, 0.99) == (36, 3564)


@pytest.mark.parametrize("share", [0.6, 0.9, 0.95, 0.99])
def test_split_counts_shares_and_disjoint_validation(share):
    rng = np.random.default_rng(0)
    train_labels = rng.permutation(np.r_[np.zeros(3000, int), np.ones(6000, int)])
    test_labels = np.r_[np.zeros(400, int), np.ones(400, int)]
    s = imbalanced_split(train_labels, test_labels, share, 3600, 5, 180, True, seed=1)
    minor, major = class_budget(3600, share)
    assert np.bincount(train_labels[s["train"]]).tolist() == [minor - 5, major - 5]
    assert np.bincount(train_labels[s["val"]]).tolist() == [5, 5]
    assert np.bincount(test_labels[s["test"]]).tolist() == [180, 180]
    assert len(s["train"]) + len(s["val"]) == 3600 and not set(s["train"]) & set(s["val"])
    assert abs((major - 5) / (3600 - 10) - share) < 0.01
    again = imbalanced_split(train_labels, test_labels, share, 3600, 5, 180, True, seed=1)
    assert all(np.array_equal(again[k], s[k]) for k in s)


def test_too_small_pool_is_an_error_not_a_truncation():
    train_labels = np.r_[np.zeros(100, int), np.ones(1000, int)]
    with pytest.raises(ValueError, match=r"share 0.99: class 1 needs 3559 training \+ 5 validation images .* pool has 1000"):
        imbalanced_split(train_labels, np.r_[np.zeros(10, int), np.ones(10, int)], 0.99, 3600, 5, 5, True, 0)


@pytest.fixture(scope="module")
def mini_fairface(tmp_path_factory):
    root = tmp_path_factory.mktemp("fairface")
    write_embedded_fairface(root, IMAGE_DIR, test_per_class=100, seed=0)
    return root


def test_mini_fairface_is_read_by_the_real_loader(mini_fairface):
    d = fairface.prepare_split(mini_fairface, IMAGE_DIR, "train", size=28, progress=False)
    assert d["x"].shape == (800, 1, 28, 28) and d["x"].dtype == torch.uint8
    y = fairface.white_vs_poc(d["race"])
    assert int(y.sum()) == 400 and len(set(d["race"][y == 0].tolist())) == 6
    val = fairface.read_labels(fairface.label_csv(mini_fairface, "val"), mini_fairface / IMAGE_DIR)
    assert len(val) == 200 and set(val[0]) == set(fairface.COLUMNS)


def test_images_are_decoded_into_one_array_not_stacked(mini_fairface):
    """The prepare job's memory (issue 27): every image is written into one preallocated uint8 array
    (debias.data.decode), so numpy's traced peak stays near the output's size, where a list of per-image arrays
    then np.stack holds the images twice."""
    import tracemalloc

    tracemalloc.start()
    try:
        d = fairface.prepare_split(mini_fairface, IMAGE_DIR, "train", size=64, grayscale=False, threads=2,
                                   progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    out_bytes = d["x"].numel()
    assert peak < 1.5 * out_bytes, f"traced peak {peak / 1e6:.1f} MB for a {out_bytes / 1e6:.1f} MB uint8 output"
    assert d["x"].shape == (800, 3, 64, 64) and d["x"].is_contiguous()


def rewrite(src, dst, mutate):
    """Copy a label CSV through ``mutate(header, rows)``; a row given as a list is written as it is."""
    rows = list(csv.DictReader(open(src)))
    header = list(rows[0])
    header, rows = mutate(header, rows)
    with open(dst, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(r if isinstance(r, list) else [r[c] for c in header] for r in rows)


def change_row(i, row):
    return lambda h, r: (h, [row(x) if j == i else x for j, x in enumerate(r)])


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda h, r: ([c for c in h if c != "race"], r), r"line 1: columns \['race'\] missing"),
        (change_row(2, lambda x: dict(x, race="Martian")), r"line 4: race 'Martian' is not one of White, Black"),
        (change_row(0, lambda x: dict(x, file="train/nope.jpg")), r"line 2: image 'train/nope.jpg' not found under"),
        # a row cut short (e.g. an interrupted download): the field count, not "race None"
        (change_row(1, lambda x: list(x.values())[:3]),
         r"line 3: row has too few fields \(3\); expected 5 as in the header \(file,age,gender,race,service_test\)"),
        (change_row(1, lambda x: [*x.values(), "extra"]), r"line 3: row has too many fields \(6\); expected 5"),
    ],
)
def test_bad_fairface_inputs_name_file_line_and_value(mini_fairface, tmp_path, mutate, message):
    bad = tmp_path / "fairface_label_train.csv"
    rewrite(fairface.label_csv(mini_fairface, "train"), bad, mutate)
    with pytest.raises(fairface.FairFaceFormatError, match=str(bad).replace(".", r"\.") + ", " + message):
        fairface.read_labels(bad, mini_fairface / IMAGE_DIR)


def test_service_test_column_is_optional(mini_fairface, tmp_path):
    src = fairface.label_csv(mini_fairface, "train")
    rewrite(src, tmp_path / "fairface_label_train.csv", lambda h, r: ([c for c in h if c != "service_test"], r))
    rows = fairface.read_labels(tmp_path / "fairface_label_train.csv", mini_fairface / IMAGE_DIR)
    full = list(csv.DictReader(open(src)))
    assert [r["race"] for r in rows] == [r["race"] for r in full] and "service_test" not in rows[0]


def test_truncated_image_names_the_file_and_the_csv_line(mini_fairface, tmp_path):
    """A JPEG cut short (an interrupted copy) stops the split with the image and its CSV line, not with PIL's
    bare 'image file is truncated'."""
    import shutil

    rows = list(csv.DictReader(open(fairface.label_csv(mini_fairface, "train"))))[:4]
    for r in rows:
        (tmp_path / IMAGE_DIR / r["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(mini_fairface / IMAGE_DIR / r["file"], tmp_path / IMAGE_DIR / r["file"])
    rewrite(fairface.label_csv(mini_fairface, "train"), fairface.label_csv(tmp_path, "train"), lambda h, _: (h, rows))
    assert fairface.prepare_split(tmp_path, IMAGE_DIR, "train", progress=False)["x"].shape[0] == 4
    jpeg = tmp_path / IMAGE_DIR / rows[2]["file"]
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    with pytest.raises(fairface.FairFaceFormatError,
                       match=rf"fairface_label_train\.csv, line 4: image '{rows[2]['file']}' \(.*\) cannot be "
                             r"decoded: image file is truncated"):
        fairface.prepare_split(tmp_path, IMAGE_DIR, "train", progress=False)


def test_missing_fairface_names_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"fairface_label_train\.csv.*reweighting\.fairface\.root"):
        fairface.read_labels(fairface.label_csv(tmp_path, "train"))
