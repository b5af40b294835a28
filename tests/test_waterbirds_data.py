"""The Waterbirds loader on small release folders written by the tests: both layouts, validation of
metadata.csv and images (file, line, value), the reference preprocessing against torchvision, group counts,
atomic outputs, and the download against a server on 127.0.0.1."""

import csv
import hashlib
import io
import logging
import re
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from debias.data import waterbirds as wb
from debias.data.download import DownloadError
from debias.io import sha256_file
from test_download import server  # noqa: F401  (fixture: files served from 127.0.0.1)

# y, split, place per row: train has every group, val and test one each of two groups
ROWS = [(0, 0, 0), (0, 0, 0), (0, 0, 1), (1, 0, 0), (1, 0, 1), (1, 0, 1), (0, 1, 0), (1, 1, 1), (0, 2, 1), (1, 2, 0)]


def write_release(folder, rows=ROWS, size=(40, 30)):
    """A release folder: metadata.csv with the real columns and JPEGs under species folders."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with open(folder / "metadata.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(wb.COLUMNS)
        for i, (y, split, place) in enumerate(rows):
            species = "001.Black_footed_Albatross" if y else "999.Some_Sparrow"
            name = f"{species}/img_{i}.jpg"
            (folder / species).mkdir(exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / name)
            w.writerow([i + 1, name, y, split, place, f"/b/bamboo_forest/{i}.jpg"])
    return folder


@pytest.mark.parametrize("layout", ["group_dro", "wilds"])
def test_both_layouts_are_found(tmp_path, layout):
    folder = write_release(tmp_path / wb.LAYOUTS[layout], ROWS[:3])
    assert wb.dataset_dir(tmp_path) == folder and wb.dataset_dir(tmp_path, layout) == folder
    assert wb.missing(tmp_path, layout) == []
    other = "wilds" if layout == "group_dro" else "group_dro"
    with pytest.raises(FileNotFoundError, match=f"{wb.LAYOUTS[other]}/metadata.csv.*waterbirds.root"):
        wb.dataset_dir(tmp_path, other)


def test_nothing_found_names_both_folders_and_the_config_keys(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        wb.dataset_dir(tmp_path)
    msg = str(err.value)
    assert all(name in msg for name in wb.LAYOUTS.values())
    assert "waterbirds.root" in msg and "waterbirds.allow_download" in msg
    assert len(wb.missing(tmp_path)) == 2


def test_preprocessing_matches_torchvision_resize_and_center_crop(tmp_path):
    from torchvision import transforms

    path = tmp_path / "a.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (37, 53, 3), dtype=np.uint8)).save(path)
    ours = wb.decode_resize_crop(path, 32, 27)
    ref = transforms.Compose([transforms.Resize((32, 32)), transforms.CenterCrop(27), transforms.PILToTensor()])
    with Image.open(path) as im:
        expected = ref(im.convert("RGB")).numpy()
    assert ours.dtype == np.uint8 and ours.shape == (3, 27, 27)
    assert np.array_equal(ours, expected)


def test_prepare_splits_groups_counts_and_sha256(tmp_path, caplog):
    folder = write_release(tmp_path / wb.LAYOUTS["wilds"])
    data_out, recipe_out = tmp_path / "out" / "data.pt", tmp_path / "out" / "recipe.json"
    with caplog.at_level(logging.WARNING):
        recipe = wb.prepare(folder, data_out, recipe_out, resize=16, crop=12, threads=2, progress=False)
    data = torch.load(data_out, weights_only=False)
    train = data["splits"]["train"]
    assert train["x"].dtype == torch.uint8 and train["x"].shape == (6, 3, 12, 12)
    assert train["group"].tolist() == [0, 0, 1, 2, 3, 3]  # 2y + place, by hand from ROWS
    assert data["splits"]["test"]["group"].tolist() == [1, 2] and data["splits"]["val"]["group"].tolist() == [0, 3]
    assert train["index"].tolist() == list(range(6))
    assert data["files"]["val"] == ["999.Some_Sparrow/img_6.jpg", "001.Black_footed_Albatross/img_7.jpg"]
    assert recipe["counts"] == {"train": [2, 1, 1, 2], "val": [1, 0, 0, 1], "test": [0, 1, 1, 0]}
    assert recipe["data_sha256"] == sha256_file(data_out)
    assert recipe["counts_match_published"] is False
    warning = caplog.text
    assert "differ from the published table" in warning and "3498" in warning and "2255" in warning
    assert "found:" in warning and "published:" in warning


def test_published_counts_pass_silently(caplog):
    with caplog.at_level(logging.WARNING):
        assert wb.check_counts({k: list(v) for k, v in wb.PUBLISHED_COUNTS.items()})
    assert caplog.text == ""


def set_field(folder, line, column, value):
    """Write ``value`` into ``column`` of the CSV line ``line`` (header = line 1)."""
    with open(folder / "metadata.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    rows[line - 1][rows[0].index(column)] = value
    with open(folder / "metadata.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


@pytest.mark.parametrize("line,column,value,message", [
    (1, "place", "background", r"metadata\.csv, line 1: columns \['place'\] missing"),
    (4, "y", "2", r"metadata\.csv, line 4: y '2' is not one of 0, 1"),
    (2, "split", "train", r"metadata\.csv, line 2: split 'train' is not one of 0, 1, 2"),
    (9, "place", "3", r"metadata\.csv, line 9: place '3' is not one of 0, 1"),
    (7, "y", "", r"metadata\.csv, line 7: y '' is not one of 0, 1"),
])
def test_bad_metadata_names_file_line_and_value(tmp_path, line, column, value, message):
    folder = write_release(tmp_path / wb.LAYOUTS["group_dro"])
    set_field(folder, line, column, value)
    out = tmp_path / "out"
    with pytest.raises(wb.WaterbirdsFormatError, match=message):
        wb.prepare(folder, out / "data.pt", out / "recipe.json", resize=16, crop=12, progress=False)
    assert not out.exists() or not any(out.iterdir())


def test_an_image_listed_twice_is_refused_with_both_lines(tmp_path):
    folder = write_release(tmp_path / wb.LAYOUTS["group_dro"])
    with open(folder / "metadata.csv", newline="") as fh:
        name = list(csv.DictReader(fh))[1]["img_filename"]  # line 3's image
    set_field(folder, 8, "img_filename", name)
    out = tmp_path / "out"
    with pytest.raises(wb.WaterbirdsFormatError,
                       match=rf"metadata\.csv, line 8: img_filename '{re.escape(name)}' is already on line 3"):
        wb.prepare(folder, out / "data.pt", out / "recipe.json", resize=16, crop=12, progress=False)
    assert not out.exists() or not any(out.iterdir())


def test_missing_or_broken_image_names_line_and_path_and_writes_nothing(tmp_path):
    folder = write_release(tmp_path / wb.LAYOUTS["group_dro"])
    out = tmp_path / "out"
    (folder / "001.Black_footed_Albatross" / "img_4.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(wb.WaterbirdsFormatError, match=r"metadata\.csv, line 6: image .*img_4\.jpg does not decode"):
        wb.prepare(folder, out / "data.pt", out / "recipe.json", resize=16, crop=12, progress=False)
    (folder / "001.Black_footed_Albatross" / "img_4.jpg").unlink()
    with pytest.raises(wb.WaterbirdsFormatError, match=r"line 6: image '001\.Black_footed_Albatross/img_4\.jpg' not found"):
        wb.prepare(folder, out / "data.pt", out / "recipe.json", resize=16, crop=12, progress=False)
    assert not out.exists() or not any(out.iterdir())


def test_metadata_saved_with_a_byte_order_mark_is_read_and_a_non_utf8_byte_is_named(tmp_path):
    folder = write_release(tmp_path / wb.LAYOUTS["group_dro"])
    csv_path = folder / "metadata.csv"
    plain = wb.read_metadata(csv_path)
    with open(csv_path, newline="") as fh:  # a needed column first, where the mark lands
        rows = list(csv.reader(fh))
    first = rows[0].index("img_filename")
    rows = [[r[first]] + r[:first] + r[first + 1:] for r in rows]
    with open(csv_path, "w", newline="", encoding="utf-8-sig") as fh:  # as a spreadsheet saves UTF-8
        csv.writer(fh).writerows(rows)
    with_bom = wb.read_metadata(csv_path)
    assert with_bom.img_filename == plain.img_filename and (with_bom.y == plain.y).all()
    lines = csv_path.read_bytes()[3:].split(b"\n")
    lines[4] = lines[4].replace(b"img_", b"img\xff_", 1)  # line 5: a Latin-1 byte
    csv_path.write_bytes(b"\n".join(lines))
    out = tmp_path / "out"
    with pytest.raises(wb.WaterbirdsFormatError, match=r"metadata\.csv, line 5: not UTF-8 text \(byte 0xff"):
        wb.prepare(folder, out / "data.pt", out / "recipe.json", resize=16, crop=12, progress=False)
    assert not out.exists() or not any(out.iterdir())


# -- download -----------------------------------------------------------------------------------------------


def tar_of(folder, arcname):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(folder, arcname=arcname)
    return buf.getvalue()


@pytest.mark.parametrize("layout,arcname", [("group_dro", "waterbird_complete95_forest2water2"), ("wilds", ".")])
def test_download_checks_the_sha256_and_unpacks_the_release(tmp_path, server, layout, arcname):
    """group_DRO's tarball has the release folder at its top; WILDS' bundle the files themselves."""
    root, url = server
    blob = tar_of(write_release(tmp_path / "src", ROWS[:3]), arcname)
    (root / "wb.tar.gz").write_bytes(blob)
    data = tmp_path / "data"
    with pytest.raises(DownloadError, match="sha256 .*, expected 00"):
        wb.download(data, layout, url + "wb.tar.gz", sha256="00" * 32)
    assert wb.missing(data, layout) and not (data / wb.LAYOUTS[layout]).exists()
    got = wb.download(data, layout, url + "wb.tar.gz", sha256=hashlib.sha256(blob).hexdigest())
    assert got == data / wb.LAYOUTS[layout] and wb.missing(data, layout) == []
    assert wb.read_metadata(got / "metadata.csv").img_filename[2] == "999.Some_Sparrow/img_2.jpg"
    assert not list((data / ".archives").iterdir())  # the archive is deleted after unpacking
    assert [p.name for p in data.iterdir() if p.name.startswith(".extract")] == []


def test_a_broken_archive_leaves_no_release_folder(tmp_path, server):
    root, url = server
    (root / "bad.tar.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DownloadError, match="not a readable tar archive"):
        wb.download(tmp_path / "data", "wilds", url + "bad.tar.gz")
    assert not (tmp_path / "data" / "waterbirds_v1.0").exists()


# -- the mini Waterbirds ------------------------------------------------------------------------------------


def test_mini_waterbirds_is_read_by_the_loader_with_the_planted_split(tmp_path, monkeypatch):
    from debias.data.mini import waterbirds as mini

    # 60 stand-in digits per class (loading the 5,000 embedded ones takes ~10 s; the writer's logic is the same)
    rng = np.random.default_rng(0)
    fake = (rng.random((600, 28, 28)) > 0.8).astype(np.uint8) * 255, np.repeat(np.arange(10, dtype=np.uint8), 60)
    monkeypatch.setattr(mini, "load_embedded_digits", lambda: fake)
    write_embedded_waterbirds = mini.write_embedded_waterbirds
    counts = write_embedded_waterbirds(tmp_path, n_train=100, n_val=40, n_test=40, size=32, seed=0)
    # by hand: train 23 waterbirds (1 on land = round(1.15)), 77 landbirds (4 on water = round(3.85));
    # val/test 9 waterbirds, 31 landbirds, each split in halves over the backgrounds
    assert counts == {"train": [73, 4, 1, 22], "val": [15, 16, 4, 5], "test": [15, 16, 4, 5]}
    folder = wb.dataset_dir(tmp_path)
    assert folder.name == "waterbird_complete95_forest2water2"
    meta = wb.read_metadata(folder / "metadata.csv")
    assert wb.group_counts(meta) == counts
    assert all(("Waterbird" in name.split("/")[0]) == bool(y) for name, y in zip(meta.img_filename, meta.y))
    x = wb.decode_images(meta, np.arange(len(meta.y)), 32, 32, threads=2, progress=False).astype(float)
    mean = x.mean(axis=(2, 3))  # [N, 3] RGB
    water = meta.place == 1
    assert (mean[water, 2] > mean[water, 1]).all() and (mean[~water, 1] > mean[~water, 2]).all()
