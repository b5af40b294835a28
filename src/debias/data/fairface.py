"""FairFace (Karkkainen & Joo, 2021) in its release layout:

    <root>/fairface_label_train.csv, <root>/fairface_label_val.csv   columns file,age,gender,race,service_test
    <root>/<image dir of the padding>/train/1.jpg, .../val/1.jpg      (the CSV's `file` column, e.g. train/1.jpg)

The image folders of the two releases (face chips with padding 0.25 or 1.25) are named in the config.
Images are decoded and resized once (area resampling) into uint8 tensors.
"""

from __future__ import annotations

import csv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

COLUMNS = ("file", "age", "gender", "race", "service_test")
RACES = ("White", "Black", "Indian", "East Asian", "Southeast Asian", "Middle Eastern", "Latino_Hispanic")
GENDERS = ("Male", "Female")
AGES = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70")


class FairFaceFormatError(ValueError):
    pass


def label_csv(root: str | Path, split: str) -> Path:
    return Path(root) / f"fairface_label_{split}.csv"


def read_labels(csv_path: str | Path, image_root: str | Path | None = None) -> list[dict[str, str]]:
    """Rows of a FairFace label CSV, validated: columns, race / gender / age values, images present.

    Errors name the file, the line and the value, and what was expected.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: FairFace label file missing (config key reweighting.fairface.root)")
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise FairFaceFormatError(f"{csv_path}, line 1: columns {missing} missing; expected {','.join(COLUMNS)}, "
                                      f"found {','.join(reader.fieldnames or [])}")
        rows = []
        for line, row in enumerate(reader, start=2):
            for key, allowed in (("race", RACES), ("gender", GENDERS), ("age", AGES)):
                if row[key] not in allowed:
                    raise FairFaceFormatError(f"{csv_path}, line {line}: {key} {row[key]!r} is not one of "
                                              f"{', '.join(allowed)}")
            if image_root is not None and not (Path(image_root) / row["file"]).is_file():
                raise FairFaceFormatError(f"{csv_path}, line {line}: image {row['file']!r} not found under "
                                          f"{image_root}")
            rows.append(row)
    if not rows:
        raise FairFaceFormatError(f"{csv_path}: no rows")
    return rows


def load_image(path: Path, size: int, grayscale: bool) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L" if grayscale else "RGB").resize((size, size), Image.BOX)
        arr = np.asarray(im, dtype=np.uint8)
    return arr[None] if grayscale else arr.transpose(2, 0, 1)


def prepare_split(root: str | Path, image_dir: str, split: str, size: int = 28, grayscale: bool = True,
                  threads: int = 4, progress: bool = True) -> dict:
    """Decode one FairFace split into {'x': uint8 [N, C, size, size], 'race', 'gender', 'age' (indices), 'file'}."""
    image_root = Path(root) / image_dir
    rows = read_labels(label_csv(root, split), image_root)
    from tqdm import tqdm

    with ThreadPoolExecutor(max(1, threads)) as pool:
        images = list(tqdm(pool.map(lambda r: load_image(image_root / r["file"], size, grayscale), rows),
                           total=len(rows), desc=f"FairFace {split}", disable=not progress, mininterval=5))
    return {
        "x": torch.from_numpy(np.stack(images)),
        "race": torch.tensor([RACES.index(r["race"]) for r in rows]),
        "gender": torch.tensor([GENDERS.index(r["gender"]) for r in rows]),
        "age": torch.tensor([AGES.index(r["age"]) for r in rows]),
        "file": [r["file"] for r in rows],
    }


def white_vs_poc(race: torch.Tensor) -> torch.Tensor:
    """The paper's binary label: 1 = White (the majority of the imbalanced sets), 0 = the six other groups."""
    return (race == RACES.index("White")).long()
