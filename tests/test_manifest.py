"""The prepare rules depend on what they read: a manifest of the raw files (path, size, mtime), rewritten while the DAG
is built only when a raw file changed, and the data source in their params (debias.data.manifest)."""
import os
import time
from pathlib import Path

import yaml

from conftest import job_counts, snakemake, write_config
from debias.data import manifest
from debias.data.mnist import raw_paths


def test_the_manifest_lists_every_file_with_size_and_mtime(tmp_path):
    (tmp_path / "imgs/b").mkdir(parents=True)
    (tmp_path / "imgs/b/2.jpg").write_bytes(b"xy")
    (tmp_path / "imgs/1.jpg").write_bytes(b"x")
    (tmp_path / "imgs/.1.jpg.tmp").write_bytes(b"partial")  # hidden: an atomic write's temporary file
    (tmp_path / "labels.csv").write_text("a\n")
    src = manifest.Source("t", (str(tmp_path / "labels.csv"), str(tmp_path / "imgs"), str(tmp_path / "gone")), ())
    lines = manifest.manifest_text(src).splitlines()
    assert lines[:2] == manifest.HEADER.splitlines()
    rows = [line.split("\t") for line in lines[2:]]
    assert [r[0] for r in rows] == [str(tmp_path / p) for p in ("labels.csv", "imgs/1.jpg", "imgs/b/2.jpg", "gone")]
    assert [r[1] for r in rows] == ["2", "1", "2", "missing"]
    assert int(rows[1][2]) == os.stat(tmp_path / "imgs/1.jpg").st_mtime_ns


def test_refresh_writes_only_a_changed_manifest(tmp_path):
    (tmp_path / "imgs").mkdir()
    img = tmp_path / "imgs/1.jpg"
    img.write_bytes(b"abc")
    src, target = manifest.Source("t", (str(tmp_path / "imgs"),), ()), tmp_path / "m/t.tsv"
    assert manifest.refresh(src, target)
    before = os.stat(target)
    assert not manifest.refresh(src, target)
    assert os.stat(target).st_mtime_ns == before.st_mtime_ns and os.stat(target).st_ino == before.st_ino
    mtime = img.stat().st_mtime_ns
    img.write_bytes(b"abcd")  # other bytes, another size, and the old modification time
    os.utime(img, ns=(mtime, mtime))
    assert manifest.refresh(src, target)


def test_manifest_input_while_raw_files_are_missing(tmp_path):
    cfg = yaml.safe_load(write_config(tmp_path, lambda c: None).read_text())
    target = str(tmp_path / "m/mnist.tsv")
    # a rule of this run writes them (embedded, download): the manifest is rule data_manifest's, nothing written now
    assert manifest.manifest_input(cfg, "mnist", target, True, True) == [target]
    # nothing writes them: no manifest input, the prepare rule reports its missing files itself
    assert manifest.manifest_input(cfg, "mnist", target, True, False) == []
    assert not Path(target).exists()
    for p in raw_paths(cfg["mnist"]["root"]):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"idx")
    assert manifest.manifest_input(cfg, "mnist", target, False, False) == [target] and not Path(target).exists()
    assert manifest.manifest_input(cfg, "mnist", target, True, False) == [target] and Path(target).is_file()


def test_sources_cover_the_image_folders_the_prepare_rules_read():
    from conftest import ROOT

    full = manifest.sources(yaml.safe_load((ROOT / "config/config.yaml").read_text()))
    assert set(full) == {"mnist", "fairface", "waterbirds", "coco"}
    assert "data/fairface/fairface-img-margin025-trainval" in full["fairface"].paths
    assert full["waterbirds"].paths == ("data/waterbirds/waterbirds_v1.0",)
    assert {"data/coco/train2014", "data/coco/val2014", "data/coco/wang/train.data"} <= set(full["coco"].paths)
    assert full["coco"].anchors == tuple(p for p in full["coco"].paths if p.startswith("data/coco/wang/"))


def raw_data_config(tmp_path, mnist_source="torchvision"):
    """config/mini.yaml with MNIST and FairFace as user-provided data (no rule writes them) under tmp_path/raw."""
    def mutate(cfg):
        cfg["allow_download"] = False
        cfg["mnist"] = {"source": mnist_source, "root": str(tmp_path / "raw/mnist")}
        cfg["reweighting"]["fairface"].update(source="release", root=str(tmp_path / "raw/fairface"))

    return write_config(tmp_path, mutate)


def test_a_replaced_raw_image_or_another_mnist_source_reruns_its_prepare_only(tmp_path):
    path = raw_data_config(tmp_path)
    cfg = yaml.safe_load(path.read_text())
    for p in raw_paths(cfg["mnist"]["root"]):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"idx")
    ff = Path(cfg["reweighting"]["fairface"]["root"])
    images = ff / cfg["reweighting"]["fairface"]["image_dirs"][str(cfg["reweighting"]["fairface"]["padding"])]
    for split in ("train", "val"):
        (ff / f"fairface_label_{split}.csv").parent.mkdir(parents=True, exist_ok=True)
        (ff / f"fairface_label_{split}.csv").write_text("file,age,gender,race,service_test\n")
        (images / split).mkdir(parents=True)
        for i in range(3):
            (images / split / f"{i}.jpg").write_bytes(b"jpeg" * (i + 1))
    results = Path(cfg["results"])
    pools = [results / f"prepared/{exp}/pool.pt" for exp in ("fairface", "l2rw_mnist")]
    for pool in pools:  # the prepare jobs' outputs, recorded as made by them (--touch) with the manifests as inputs
        pool.parent.mkdir(parents=True, exist_ok=True)
        pool.write_bytes(b"pool")
        pool.with_suffix(".json").write_text("{}")
    time.sleep(0.05)
    snakemake(*pools, "--touch", "--forcerun", "fairface_pool", "l2rw_mnist_pool", "--cores", 1, "--configfile", path,
              check=True)
    manifests = {p.name: p.stat().st_mtime_ns for p in (results / "manifests").iterdir()}
    assert set(manifests) == {"fairface.tsv", "mnist.tsv"}

    def scheduled(config=path):
        out = snakemake(*pools, "-n", "--cores", 1, "--configfile", config, "--quiet", "rules", check=True).stdout
        return set(job_counts(out)) - {"total"}

    # nothing changed: nothing to do, and the dry run left the manifests alone
    assert scheduled() == set()
    assert {p.name: p.stat().st_mtime_ns for p in (results / "manifests").iterdir()} == manifests

    # another MNIST source over the same files: the MNIST pool (a params change), not FairFace's
    other = tmp_path / "embedded.yaml"
    other.write_text(yaml.safe_dump({**cfg, "mnist": {**cfg["mnist"], "source": "embedded"}}))
    assert scheduled(other) == {"l2rw_mnist_pool"}

    # one image replaced by other bytes of another size, with its old modification time: FairFace's pool only
    img = images / "train/1.jpg"
    mtime = img.stat().st_mtime_ns
    img.write_bytes(b"corrupted image")
    os.utime(img, ns=(mtime, mtime))
    assert scheduled() == {"fairface_pool"}
    assert (results / "manifests/mnist.tsv").stat().st_mtime_ns == manifests["mnist.tsv"]
