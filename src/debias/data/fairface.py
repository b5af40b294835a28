"""FairFace (Karkkainen & Joo, 2021) in its release layout:

    <root>/fairface_label_train.csv, <root>/fairface_label_val.csv   columns file,age,gender,race[,service_test]
    <root>/<image dir of the padding>/train/1.jpg, .../val/1.jpg      (the CSV's `file` column, e.g. train/1.jpg)

The image folders of the two releases (face chips with padding 0.25 or 1.25) are named in the config.
Images are decoded and resized once (area resampling) into uint8 tensors.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from debias.data.decode import decode_all
from debias.data.layout import fairface_label_csv as label_csv  # noqa: F401 (re-exported)
from debias.errors import DataFormatError, MissingData

COLUMNS = ("file", "age", "gender", "race", "service_test")  # the release's columns, in its order
REQUIRED = ("file", "age", "gender", "race")  # what the pipeline reads (service_test is not used)
RACES = ("White", "Black", "Indian", "East Asian", "Southeast Asian", "Middle Eastern", "Latino_Hispanic")
GENDERS = ("Male", "Female")
AGES = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70")


class FairFaceFormatError(DataFormatError):
    pass


def read_labels(csv_path: str | Path, image_root: str | Path | None = None) -> list[dict[str, str]]:
    """Rows of a FairFace label CSV, validated: columns, field counts, race / gender / age values, images present.

    Errors name the file, the line and the value, and what was expected.
    """
    return [row for _, row in _read_rows(Path(csv_path), image_root)]


def _read_rows(csv_path: Path, image_root: str | Path | None) -> list[tuple[int, dict[str, str]]]:
    """(line number in the file, row) of every record of a label CSV; see ``read_labels``."""
    if not csv_path.is_file():
        raise MissingData(f"{csv_path}: FairFace label file missing (config key reweighting.fairface.root)")
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None) or []
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise FairFaceFormatError(f"{csv_path}, line 1: columns {missing} missing; expected {','.join(REQUIRED)} "
                                      f"(service_test optional), found {','.join(header) or 'no header'}")
        rows = []
        for fields in reader:
            line = reader.line_num
            if not fields:  # a blank line
                continue
            if len(fields) != len(header):
                few = "few" if len(fields) < len(header) else "many"
                raise FairFaceFormatError(f"{csv_path}, line {line}: row has too {few} fields ({len(fields)}); "
                                          f"expected {len(header)} as in the header ({','.join(header)})")
            row = dict(zip(header, fields))
            for key, allowed in (("race", RACES), ("gender", GENDERS), ("age", AGES)):
                if row[key] not in allowed:
                    raise FairFaceFormatError(f"{csv_path}, line {line}: {key} {row[key]!r} is not one of "
                                              f"{', '.join(allowed)}")
            if image_root is not None and not (Path(image_root) / row["file"]).is_file():
                raise FairFaceFormatError(f"{csv_path}, line {line}: image {row['file']!r} not found under "
                                          f"{image_root}")
            rows.append((line, row))
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
    """Decode one FairFace split into {'x': uint8 [N, C, size, size] (decoded into one preallocated array,
    ``debias.data.decode``), 'race', 'gender', 'age' (indices), 'file'}.

    An image that cannot be decoded (truncated, not an image) stops it with the CSV's file and line.
    """
    image_root = Path(root) / image_dir
    csv_path = label_csv(root, split)
    lines_rows = _read_rows(csv_path, image_root)
    rows = [row for _, row in lines_rows]

    def decode(i: int) -> np.ndarray:
        line, row = lines_rows[i]
        path = image_root / row["file"]
        try:
            return load_image(path, size, grayscale)
        except (OSError, SyntaxError, ValueError) as err:  # what PIL raises for a truncated or unreadable file
            raise FairFaceFormatError(f"{csv_path}, line {line}: image {row['file']!r} ({path}) cannot be decoded: "
                                      f"{err}; replace it with the file from the FairFace release") from err

    x = decode_all(len(rows), decode, (1 if grayscale else 3, size, size), threads, progress,
                   desc=f"FairFace {split}", mininterval=5)
    return {
        "x": torch.from_numpy(x),
        "race": torch.tensor([RACES.index(r["race"]) for r in rows]),
        "gender": torch.tensor([GENDERS.index(r["gender"]) for r in rows]),
        "age": torch.tensor([AGES.index(r["age"]) for r in rows]),
        "file": [r["file"] for r in rows],
    }


def white_vs_poc(race: torch.Tensor) -> torch.Tensor:
    """The paper's binary label: 1 = White (the majority of the imbalanced sets), 0 = the six other groups."""
    return (race == RACES.index("White")).long()
