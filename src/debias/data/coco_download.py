"""What the COCO gender experiment needs on disk, and fetching it (only when the config allows downloads).

- COCO 2014 (both sources): ``<root>/train2014/``, ``<root>/val2014/`` from ``zips/{train,val}2014.zip``;
  source ``captions`` also ``<root>/annotations/{instances,captions}_{train,val}2014.json`` from
  ``annotations/annotations_trainval2014.zip``. md5 sums as published with the archives.
- Wang et al.'s split files (source ``wang``) into ``wang_dir``, each checked by its sha256 (computed from the
  repository's files at commit 023c4ff); ``train.data`` is not in the stored snapshot we could hash, so it is
  checked by its content instead: 22,826 entries, 16,225 men and 6,601 women (protocol sheet, pitfalls).

This module must not import torch (the workflow imports it while it builds the DAG).
"""

from __future__ import annotations

from pathlib import Path

COCO_ARCHIVES = {  # member -> (path under the base URL, md5)
    "train2014": ("zips/train2014.zip", "0da8c0bd3d6becc4dcb32757491aca88"),
    "val2014": ("zips/val2014.zip", "a3d79f5ed8d289b7a7554ce06a5782b3"),
    "annotations": ("annotations/annotations_trainval2014.zip", "0a379cfc70b0e71301e0f377548639bd"),
}
ANNOTATION_FILES = tuple(f"{kind}_{split}2014.json" for kind in ("instances", "captions") for split in ("train", "val"))
WANG_SHA256 = {
    "object_id.map": "5b79afcaf9692904c8ae2d14c819a44a2513b35146df7928b6aef5b4869ca05e",
    "train.data": None,  # checked by its counts (WANG_TRAIN_COUNTS)
    "val.data": "2257bc73def975c7c496ef348c0ad273462f25a3ceeba55434c1b8b7a7154ad1",
    "test.data": "e7fbc53cbea154cb66e0d55855be318cb9626e2c892b62a04cbf42be1f151f9d",
    "train_ratio_1.ids": "c8f05af1a1e814a31247a4a50154f5184e8e2575ee395afc52693e2cac76d7c1",
    "train_ratio_2.ids": "9ab66737fc464e94840b85240ed6da1707c716accc85c33e1e2052344a9dccb0",
    "train_ratio_3.ids": "b1b431f0d9be5f0339f1925a9d36a61a979f9c9ac9e6d2be6effcfc72b98cd0c",
    "val_ratio_1.ids": "8147cc074235d3997f2cc744b328124160b0184f8c15a9f516645c7c6e3b46d6",
    "val_ratio_2.ids": "ba142108b522fba0dda81aa79162ca5e5c84dce1fb2513c8e0327534eec6e36e",
    "val_ratio_3.ids": "f880f274b55d83df836ff1733377cf96355cbd2a7673054e8640640e344e7a0a",
    "test_ratio_1.ids": "2f476eb0a38d4e6e9c4d9bd90e832319bef610485aaad798a363b1e15847ea65",
    "test_ratio_2.ids": "fee6d912b44981e05c90ba487b6fe9d116603d829a4617563b2fe515aa79cbee",
    "test_ratio_3.ids": "05bf5929ee4def773f4285969694bec48824d74a3c2595e9817854c1a36bc698",
}
WANG_TRAIN_COUNTS = {"n": 22826, "man": 16225, "woman": 6601}


def label_files(section: dict) -> list[Path]:
    """The label files the prepare step reads (Snakemake inputs); none for the embedded dataset's own rule."""
    if section["source"] == "wang":
        return [Path(section["wang_dir"]) / name for name in WANG_SHA256]
    return [Path(section["root"]) / "annotations" / name for name in ANNOTATION_FILES]


def image_dirs(section: dict) -> list[Path]:
    return [Path(section["root"]) / "train2014", Path(section["root"]) / "val2014"]


def missing(section: dict) -> list[Path]:
    return [p for p in label_files(section) if not p.is_file()] + [d for d in image_dirs(section) if not d.is_dir()]


def download(section: dict) -> None:
    """Fetch what is missing: image archives (and annotations for ``captions``), Wang's files for ``wang``."""
    from debias.data.download import download_file, extract_zip

    root = Path(section["root"])
    urls = section.get("download", {})
    members = [d.name for d in image_dirs(section) if not d.is_dir()]
    if section["source"] != "wang" and any(not p.is_file() for p in label_files(section)):
        members.append("annotations")
    for member in members:
        path, md5 = COCO_ARCHIVES[member]
        archive = download_file([urls["coco"] + path], root / ".archives" / Path(path).name, md5=md5)
        extract_zip(archive, root, [member])
        archive.unlink()
    if section["source"] == "wang":
        wang_dir = Path(section["wang_dir"])
        for name, sha in WANG_SHA256.items():
            target = wang_dir / name
            if target.is_file():
                continue
            download_file([urls["wang"] + name], target, sha256=sha)
            if name == "train.data":
                check_wang_train(target)


def check_wang_train(path: Path) -> None:
    from debias.data.coco import CocoFormatError, read_wang_split

    try:
        split = read_wang_split(path)
        counts = {"n": len(split), **split.counts()}
        if counts != WANG_TRAIN_COUNTS:
            raise CocoFormatError(f"{path}: {counts}, expected {WANG_TRAIN_COUNTS}")
    except Exception:
        path.unlink(missing_ok=True)
        raise
