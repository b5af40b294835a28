"""A FairFace-format dataset written from the embedded digits: 4 -> race White, 9 -> the six other groups.

Train rows come from the embedded train digits, val rows from the test digits; images are the digits as
64x64 RGB JPEGs under ``<root>/<image_dir>/{train,val}/<n>.jpg``; ages, genders and ``service_test`` are drawn
at random from the real value sets. The same FairFace loader reads it as it reads the real release.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from debias.data.fairface import AGES, COLUMNS, GENDERS, RACES, label_csv
from debias.data.mini.mnist import load_embedded_digits, stratified_split
from debias.io import atomic_path

DIGITS = {4: "white", 9: "other"}


def write_embedded_fairface(root: str | Path, image_dir: str, test_per_class: int = 100, seed: int = 0,
                            size: int = 64) -> dict:
    from PIL import Image

    x, y = load_embedded_digits()
    tr, te = stratified_split(y, test_per_class, seed)
    rng = np.random.default_rng(seed)
    others = [r for r in RACES if r != "White"]
    counts = {}
    for split, idx in (("train", tr), ("val", te)):
        idx = idx[np.isin(y[idx], list(DIGITS))]
        rows = []
        folder = Path(root) / image_dir / split
        folder.mkdir(parents=True, exist_ok=True)
        for n, i in enumerate(rng.permutation(idx), start=1):
            race = "White" if y[i] == 4 else others[rng.integers(len(others))]
            file = f"{split}/{n}.jpg"
            img = Image.fromarray(x[i]).convert("RGB").resize((size, size), Image.BILINEAR)
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=95)
            (Path(root) / image_dir / file).write_bytes(buf.getvalue())
            rows.append({"file": file, "age": AGES[rng.integers(2, 7)], "gender": GENDERS[rng.integers(2)],
                         "race": race, "service_test": str(bool(rng.integers(2)))})
        with atomic_path(label_csv(root, split)) as tmp:
            with open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=COLUMNS)
                writer.writeheader()
                writer.writerows(rows)
        counts[split] = len(rows)
    return counts
