"""A FairFace-format dataset written from the embedded digits: 4 -> race White, 9 -> the six other groups.

Train rows come from the embedded train digits, val rows from the test digits; images are the digits as
64x64 RGB JPEGs under ``<root>/<image_dir>/{train,val}/<n>.jpg``; ages, genders and ``service_test`` are drawn
at random from the real value sets. The same FairFace loader reads it as it reads the real release.

``race_counts`` (the rehearsal stand-ins, ``tools/rehearsal``) asks for exact counts of every race group per split
instead: White images are drawn (with replacement) from the split's 4s, the other groups' from its 9s.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from debias.data.fairface import AGES, COLUMNS, GENDERS, RACES, label_csv
from debias.data.mini.jpeg import JpegWriter
from debias.data.mini.mnist import load_embedded_digits, stratified_split
from debias.io import atomic_path

DIGITS = {4: "white", 9: "other"}


def race_images(y: np.ndarray, idx: np.ndarray, counts: dict[str, int], rng: np.random.Generator,
                where: str = "race_counts") -> list[tuple[int, str]]:
    """(digit index, race) of every image of a split with exactly ``counts[race]`` images of each race, in a
    random order: White from the 4s of ``idx``, the other groups from its 9s, drawn with replacement."""
    unknown = sorted(set(counts) - set(RACES))
    if unknown:
        raise ValueError(f"{where}: races {unknown} are not FairFace's; expected some of {', '.join(RACES)}")
    races = rng.permutation(np.repeat(np.array(list(counts), dtype=object), list(counts.values())))
    pools = {race: idx[y[idx] == (4 if race == "White" else 9)] for race in counts}
    digits = np.empty(len(races), np.int64)
    for race, pool in pools.items():
        at = np.flatnonzero(races == race)
        digits[at] = rng.choice(pool, len(at), replace=True)
    return list(zip(digits.tolist(), races.tolist()))


def write_embedded_fairface(root: str | Path, image_dir: str, test_per_class: int = 100, seed: int = 0,
                            size: int = 64, race_counts: dict[str, dict[str, int]] | None = None,
                            jpegs: JpegWriter | None = None) -> dict:
    """Write the label CSVs and the images; return the rows per split. ``race_counts``: {'train': {race: n},
    'val': ...} (see the module's docstring); ``jpegs``: the writer of the images (default: this process)."""
    from PIL import Image

    x, y = load_embedded_digits()
    tr, te = stratified_split(y, test_per_class, seed)
    rng = np.random.default_rng(seed)
    others = [r for r in RACES if r != "White"]
    tables = {}
    out = jpegs or JpegWriter()
    images_of = {}  # digit index -> its RGB image (the stand-ins draw each digit many times)
    folder = Path(root) / image_dir
    for split, idx in (("train", tr), ("val", te)):
        idx = idx[np.isin(y[idx], list(DIGITS))]
        images = ([(i, None) for i in rng.permutation(idx)] if race_counts is None
                  else race_images(y, idx, race_counts[split], rng, f"race_counts[{split!r}]"))
        rows = []
        for n, (i, race) in enumerate(images, start=1):
            if race is None:
                race = "White" if y[i] == 4 else others[rng.integers(len(others))]
            file = f"{split}/{n}.jpg"
            if i not in images_of:
                images_of[i] = np.asarray(Image.fromarray(x[i]).convert("RGB").resize((size, size), Image.BILINEAR))
            out.put(folder / file, images_of[i])
            rows.append({"file": file, "age": AGES[rng.integers(2, 7)], "gender": GENDERS[rng.integers(2)],
                         "race": race, "service_test": str(bool(rng.integers(2)))})
        tables[split] = rows
    out.flush()
    for split, rows in tables.items():  # the label files last, once every image they name is on disk
        with atomic_path(label_csv(root, split)) as tmp:
            with open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=COLUMNS)
                writer.writeheader()
                writer.writerows(rows)
    return {split: len(rows) for split, rows in tables.items()}
