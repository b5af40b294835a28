"""Waterbirds (Sagawa et al. 2020) in either public release (protocol sheet waterbirds.md §2.1–2.2, W10):

    <root>/waterbird_complete95_forest2water2/   the group_DRO tarball (layout ``group_dro``)
    <root>/waterbirds_v1.0/                      WILDS' download (layout ``wilds``; also has RELEASE_v1.0.txt)

Both hold ``metadata.csv`` (``img_id,img_filename,y,split,place,place_filename``; the loader needs
``img_filename, y, split, place``) and the JPEGs under species folders (``001.Black_footed_Albatross/…``).
y: 0 landbird, 1 waterbird; place: 0 land, 1 water; split: 0 train, 1 val, 2 test; group g = 2·y + place.

``prepare`` decodes every image once, with the reference preprocessing (a ``resize`` × ``resize`` square resize,
aspect ratio not kept, bilinear as torchvision's ``Resize((256, 256))`` on PIL images, then the centre
``crop`` × ``crop`` window as ``CenterCrop``), into uint8 tensors, writes them atomically with their sha256 in
a recipe, and checks the per-split group counts against the published table (a mismatch warns with both).
Bad input (a missing column, a value outside its set, a missing or undecodable image) stops with the file,
the line and the value.

This module must not import torch at import time (the workflow imports it while it builds the DAG).
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from debias.data.layout import WATERBIRDS_LAYOUTS as LAYOUTS
from debias.errors import DataFormatError
from debias.data.layout import waterbirds_metadata_file as metadata_file  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

ARCHIVE_URLS = {  # no checksum is published for either archive: pin one in the config (download.sha256)
    "group_dro": "https://nlp.stanford.edu/data/dro/waterbird_complete95_forest2water2.tar.gz",
    "wilds": "https://worksheets.codalab.org/rest/bundles/0x505056d5cdea4e4eaa0e242cbfe2daa4/contents/blob/",
}
REQUIRED_COLUMNS = ("img_filename", "y", "split", "place")
COLUMNS = ("img_id", "img_filename", "y", "split", "place", "place_filename")
VALUES = {"y": (0, 1), "split": (0, 1, 2), "place": (0, 1)}
SPLITS = {0: "train", 1: "val", 2: "test"}
GROUP_NAMES = {0: "landbird_land", 1: "landbird_water", 2: "waterbird_land", 3: "waterbird_water"}
# the published group counts (sheet §2.1: train from WILDS' weights, val/test from third-party scripts)
PUBLISHED_COUNTS = {"train": (3498, 184, 56, 1057), "val": (467, 466, 133, 133), "test": (2255, 2255, 642, 642)}


class WaterbirdsFormatError(DataFormatError):
    """Bad input: the message names the file, the line and the value."""


@dataclass
class Metadata:
    path: Path  # the metadata.csv read
    img_filename: list[str]
    y: np.ndarray  # int64 [N]
    split: np.ndarray
    place: np.ndarray
    line: np.ndarray  # the CSV line of every row (header = line 1)

    @property
    def group(self) -> np.ndarray:
        return group_ids(self.y, self.place)

    def rows(self, split: str) -> np.ndarray:
        code = {v: k for k, v in SPLITS.items()}[split]
        return np.flatnonzero(self.split == code)


def group_ids(y: np.ndarray, place: np.ndarray) -> np.ndarray:
    """g = 2·y + place: 0 landbird/land, 1 landbird/water, 2 waterbird/land, 3 waterbird/water."""
    return 2 * np.asarray(y) + np.asarray(place)


# -- where the data is --------------------------------------------------------------------------------------


def candidate_dirs(root: str | Path, layout: str) -> list[Path]:
    if layout == "auto":
        return [Path(root) / folder for folder in LAYOUTS.values()]
    if layout not in LAYOUTS:
        raise ValueError(f"config key waterbirds.layout: {layout!r}; expected one of auto, {', '.join(LAYOUTS)}")
    return [Path(root) / LAYOUTS[layout]]


def dataset_dir(root: str | Path, layout: str = "auto") -> Path:
    """The release folder under ``root`` that has a metadata.csv (``auto``: the group_DRO one first)."""
    candidates = candidate_dirs(root, layout)
    for d in candidates:
        if (d / "metadata.csv").is_file():
            return d
    raise FileNotFoundError(
        f"Waterbirds not found: none of {', '.join(str(d / 'metadata.csv') for d in candidates)} exists "
        "(config key waterbirds.root; set waterbirds.allow_download: true to fetch the public archive)")


def missing(root: str | Path, layout: str = "auto") -> list[Path]:
    """[] if a release folder is in place, else the metadata files looked for (for the workflow's check)."""
    candidates = candidate_dirs(root, layout)
    if any((d / "metadata.csv").is_file() for d in candidates):
        return []
    return [d / "metadata.csv" for d in candidates]


def download(root: str | Path, layout: str, url: str | None = None, sha256: str | None = None) -> Path:
    """Fetch the public archive of ``layout`` (resumable, checked against ``sha256`` when one is given) and unpack
    it into ``root/<release folder>``; the archive is deleted afterwards. Returns the release folder."""
    from debias.data.download import download_file, extract_tar_folder, file_digest

    if layout not in LAYOUTS:
        raise ValueError(f"config key waterbirds.layout: downloads need group_dro or wilds, got {layout!r}")
    root = Path(root)
    final = root / LAYOUTS[layout]
    if (final / "metadata.csv").is_file():
        return final
    archive = download_file([url or ARCHIVE_URLS[layout]], root / ".archives" / f"{LAYOUTS[layout]}.tar.gz",
                            sha256=sha256)
    if not sha256:
        log.warning("%s: no sha256 pinned (config key waterbirds.download.sha256); the archive's sha256 is %s",
                    archive, file_digest(archive, "sha256"))
    extract_tar_folder(archive, root, LAYOUTS[layout], "metadata.csv")
    archive.unlink()
    return final


# -- metadata ------------------------------------------------------------------------------------------------


def read_metadata(csv_path: str | Path) -> Metadata:
    """Read and validate ``metadata.csv``: the needed columns present, y / split / place in their sets, each image
    named once."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: Waterbirds metadata file missing (config key waterbirds.root)")
    try:  # utf-8-sig: a file saved by a spreadsheet starts with a byte-order mark, which is not part of the header
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = csv_path.read_bytes()[:exc.start].count(b"\n") + 1
        raise WaterbirdsFormatError(f"{csv_path}, line {line}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
                                    f"offset {exc.start}); expected the release's comma-separated metadata") from None
    with io.StringIO(text, newline="") as fh:
        reader = csv.DictReader(fh)
        found = reader.fieldnames or []
        absent = [c for c in REQUIRED_COLUMNS if c not in found]
        if absent:
            raise WaterbirdsFormatError(f"{csv_path}, line 1: columns {absent} missing; expected "
                                        f"{','.join(COLUMNS)}, found {','.join(found)}")
        names, values, lines, first_line = [], {k: [] for k in VALUES}, [], {}
        for line, row in enumerate(reader, start=2):
            for key, allowed in VALUES.items():
                raw = (row[key] or "").strip()
                try:
                    v = int(raw)
                except ValueError:
                    v = None
                if v not in allowed:
                    raise WaterbirdsFormatError(f"{csv_path}, line {line}: {key} {raw!r} is not one of "
                                                f"{', '.join(map(str, allowed))}")
                values[key].append(v)
            if not row["img_filename"]:
                raise WaterbirdsFormatError(f"{csv_path}, line {line}: img_filename is empty")
            seen = first_line.setdefault(row["img_filename"], line)
            if seen != line:  # the image would count twice in its group and, across splits, leak into evaluation
                raise WaterbirdsFormatError(f"{csv_path}, line {line}: img_filename {row['img_filename']!r} is already "
                                            f"on line {seen}; expected each image once")
            names.append(row["img_filename"])
            lines.append(line)
    if not names:
        raise WaterbirdsFormatError(f"{csv_path}: no rows")
    arr = {k: np.asarray(v, dtype=np.int64) for k, v in values.items()}
    return Metadata(csv_path, names, arr["y"], arr["split"], arr["place"], np.asarray(lines, dtype=np.int64))


def group_counts(meta: Metadata) -> dict[str, list[int]]:
    """Per split, the number of images of each group 0..3."""
    g = meta.group
    return {name: np.bincount(g[meta.split == code], minlength=4).tolist() for code, name in SPLITS.items()}


def counts_table(counts: dict[str, Any]) -> str:
    header = "split  " + "  ".join(f"{GROUP_NAMES[g]:>15}" for g in range(4))
    rows = [f"{s:<6} " + "  ".join(f"{int(c):>15}" for c in counts[s]) for s in SPLITS.values() if s in counts]
    return "\n".join([header, *rows])


def check_counts(counts: dict[str, list[int]], expected: dict[str, tuple[int, ...]] = PUBLISHED_COUNTS,
                 where: str = "") -> bool:
    """Warn with both tables where the group counts differ from ``expected``; True where they agree."""
    if all(list(counts[s]) == list(expected[s]) for s in expected):
        return True
    log.warning("%sWaterbirds group counts differ from the published table.\nfound:\n%s\npublished:\n%s",
                f"{where}: " if where else "", counts_table(counts), counts_table(expected))
    return False


# -- images --------------------------------------------------------------------------------------------------


def decode_resize_crop(path: Path, resize: int, crop: int) -> np.ndarray:
    """RGB, square ``resize`` × ``resize`` (bilinear, PIL's antialiased resize as torchvision's Resize on PIL
    images), centre ``crop`` × ``crop`` (torchvision CenterCrop's offset round((resize − crop) / 2)):
    uint8 [3, crop, crop]."""
    from PIL import Image

    if crop > resize:
        raise ValueError(f"config key waterbirds.image: crop {crop} larger than resize {resize}")
    with Image.open(path) as im:
        im = im.convert("RGB").resize((resize, resize), Image.BILINEAR)
    off = int(round((resize - crop) / 2.0))
    arr = np.asarray(im, dtype=np.uint8)[off : off + crop, off : off + crop]
    return arr.transpose(2, 0, 1).copy()


def decode_images(meta: Metadata, rows: np.ndarray, resize: int, crop: int, threads: int = 4,
                  progress: bool = True) -> np.ndarray:
    """The images of ``rows`` as uint8 [n, 3, crop, crop], decoded into one preallocated array
    (``debias.data.decode``); a missing or undecodable one stops with its line."""
    from debias.data.decode import decode_all

    folder = meta.path.parent

    def one(k: int) -> np.ndarray:
        i = rows[k]
        path = folder / meta.img_filename[i]
        where = f"{meta.path}, line {meta.line[i]}"
        if not path.is_file():
            raise WaterbirdsFormatError(f"{where}: image {meta.img_filename[i]!r} not found under {folder}")
        try:
            return decode_resize_crop(path, resize, crop)
        except Exception as exc:
            raise WaterbirdsFormatError(f"{where}: image {path} does not decode ({type(exc).__name__}: {exc})") from exc

    return decode_all(len(rows), one, (3, crop, crop), threads, progress, desc="decode Waterbirds")


def load_splits(folder: str | Path, resize: int = 256, crop: int = 224, threads: int = 4,
                progress: bool = True) -> tuple[dict[str, dict[str, Any]], Metadata]:
    """{split: {x uint8 [N, 3, crop, crop], y, place, group, index (0..N−1 within the split)}} and the metadata."""
    import torch

    meta = read_metadata(Path(folder) / "metadata.csv")
    splits = {}
    for name in SPLITS.values():
        rows = meta.rows(name)
        if rows.size == 0:
            raise WaterbirdsFormatError(f"{meta.path}: no row has split {name} "
                                        f"({ {v: k for k, v in SPLITS.items()}[name]})")
        x = decode_images(meta, rows, resize, crop, threads, progress)
        splits[name] = {"x": torch.from_numpy(x), "y": torch.from_numpy(meta.y[rows]),
                        "place": torch.from_numpy(meta.place[rows]), "group": torch.from_numpy(meta.group[rows]),
                        "index": torch.arange(rows.size)}
    return splits, meta


def prepare(folder: str | Path, data_out: str | Path, recipe_out: str | Path, resize: int = 256, crop: int = 224,
            threads: int = 4, expected_counts: dict[str, tuple[int, ...]] | None = PUBLISHED_COUNTS,
            progress: bool = True) -> dict[str, Any]:
    """Decode once into ``data_out`` (torch file of the splits and the file names) and write ``recipe_out``
    (JSON: preprocessing, group counts, whether they match the published table, sha256 of ``data_out``).
    Every check of the input runs before anything is written; both files are written atomically, the recipe
    last."""
    from debias.io import sha256_file, torch_save, write_json

    splits, meta = load_splits(folder, resize, crop, threads, progress)
    counts = group_counts(meta)
    matches = check_counts(counts, expected_counts, str(meta.path)) if expected_counts else None
    files = {name: [meta.img_filename[i] for i in meta.rows(name)] for name in SPLITS.values()}
    torch_save({"splits": splits, "files": files, "group_names": GROUP_NAMES}, data_out)
    recipe = {
        "folder": str(folder), "metadata_sha256": sha256_file(meta.path),
        "image": {"resize": resize, "crop": crop, "resample": "bilinear (PIL), square, then centre crop"},
        "group_names": GROUP_NAMES, "counts": counts, "published_counts": {k: list(v) for k, v in PUBLISHED_COUNTS.items()},
        "counts_match_published": matches, "data_sha256": sha256_file(data_out),
    }
    write_json(recipe_out, recipe)
    return recipe
