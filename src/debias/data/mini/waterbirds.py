"""A Waterbirds-format folder written from the embedded digits, read by the same loader as the real releases.

Layout as the group_DRO tarball's (``layout='wilds'``: WILDS' ``<root>/waterbirds_v1.0/``):
``<root>/waterbird_complete95_forest2water2/metadata.csv`` with the real
columns (``img_id,img_filename,y,split,place,place_filename``; split 0 train, 1 val, 2 test) and JPEGs under
species-like folders ``NNN.Digit_<d>_<Landbird|Waterbird>/<img>.jpg``.

- "bird": a handwritten digit (``scale`` = 75 % of the image side), pasted in a light colour at a random position;
  "waterbird" (y = 1) = digits 1 and 7, "landbird" (y = 0) = digits 0, 2, 3, 5, 6, 8. # mini: a digit's shape
  instead of a CUB bird cut out with its mask; with these sets and this size a small ResNet from scratch learns
  the digit only partly under ERM (as ImageNet features learn the bird only partly on the real data), whereas
  digits 0-4 vs 5-9 at 60 % were hardly learned at all (test worst-group accuracy: ERM 0.00 after 15 epochs,
  GroupDRO 0.11 after 15 and 0.09 after 40; with these defaults ERM 0.33 and GroupDRO 0.76 after 15 epochs;
  one seed, 1,200 / 400 / 800 images of 48 px stored at 40 px, centre 32 px, widths 8-16-32, lr 0.05, batch 64).
- "place": the background. Land (0): green-brown with vertical tree-like stripes; water (1): blue with
  horizontal waves; both with pixel noise. # mini: a drawn texture instead of a Places365 scene.
- Splits as the real ones: in train, ``aligned`` (95 %) of landbirds on land and of waterbirds on water; in val
  and test, half of each class on each background. ``waterbird_share`` of every split is waterbirds (23 %, the
  real train share 1,113 / 4,795). # mini: a few hundred images per split instead of 4,795 / 1,199 / 5,794.
- ``place_filename`` names a Places category of the right kind (bamboo_forest, forest/broadleaf, ocean,
  lake/natural) with a running number; no such file exists. # mini
The background is far easier to learn than the digit, so ERM leans on it and fails on the minority groups
(landbirds on water, waterbirds on land), the bias the real benchmark plants.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from debias.data.mini.jpeg import JpegWriter
from debias.data.mini.mnist import load_embedded_digits
from debias.data.waterbirds import COLUMNS, LAYOUTS
from debias.io import atomic_path

# mini: "species" are digit classes; 4 and 9 are left out (too close to 1 and 7 in many hands)
WATERBIRD_DIGITS = (1, 7)
LANDBIRD_DIGITS = (0, 2, 3, 5, 6, 8)
PLACES = {0: ("/b/bamboo_forest", "/f/forest/broadleaf"), 1: ("/o/ocean", "/l/lake/natural")}
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


def split_groups(n: int, waterbird_share: float, aligned: float | None) -> list[int]:
    """Group counts [landbird/land, landbird/water, waterbird/land, waterbird/water] of one split:
    ``aligned`` share of each class on its own background, or (None) half of each class on each."""
    water_birds = round(n * waterbird_share)
    land_birds = n - water_birds
    if aligned is None:
        return [land_birds // 2, land_birds - land_birds // 2, water_birds // 2, water_birds - water_birds // 2]
    land_on_water = round(land_birds * (1 - aligned))
    water_on_land = round(water_birds * (1 - aligned))
    return [land_birds - land_on_water, land_on_water, water_on_land, water_birds - water_on_land]


def background(place: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """float [size, size, 3]: land = green-brown with vertical stripes, water = blue with horizontal waves."""
    r = np.arange(size)[:, None].astype(np.float64)
    c = np.arange(size)[None, :].astype(np.float64)
    phase = rng.uniform(0, 2 * np.pi)
    if place == 0:
        base = np.array([70.0, 105.0, 40.0]) + rng.uniform(-10, 10, 3)
        stripes = np.broadcast_to(25.0 * (np.sin(c * rng.uniform(0.8, 1.4) + phase) > 0.3), (size, size))  # trunks
        img = base + stripes[..., None] * np.array([0.9, 0.5, 0.2])
    else:
        base = np.array([40.0, 85.0, 165.0]) + rng.uniform(-10, 10, 3)
        waves = 20 * np.sin(r * rng.uniform(0.5, 0.9) + 0.3 * np.sin(c * 0.4) + phase)
        img = base + waves[..., None] * np.array([0.4, 0.7, 1.0])
    return img + rng.normal(0, 8, (size, size, 3))


def compose(digit: np.ndarray, place: int, size: int, rng: np.random.Generator, scale: float) -> np.ndarray:
    """The digit (``scale`` of the image side, a light random tint) pasted at a random position: uint8 [size, size, 3]."""
    from PIL import Image

    cell = int(round(scale * size))
    mask = np.asarray(Image.fromarray(digit).resize((cell, cell), Image.BILINEAR), np.float64)[..., None] / 255.0
    img = background(place, size, rng)
    top, left = rng.integers(0, size - cell + 1, 2)
    bird = np.array([235.0, 225.0, 200.0]) + rng.uniform(-20, 20, 3)
    window = img[top : top + cell, left : left + cell]
    img[top : top + cell, left : left + cell] = (1 - mask) * window + mask * bird
    return np.clip(img, 0, 255).round().astype(np.uint8)


def species_folder(digit: int, waterbird_digits=WATERBIRD_DIGITS) -> str:
    kind = "Waterbird" if digit in waterbird_digits else "Landbird"
    return f"{digit + 1:03d}.Digit_{digit}_{kind}"


def write_embedded_waterbirds(root: str | Path, n_train: int = 1200, n_val: int = 400, n_test: int = 800,
                              waterbird_share: float = 0.23, aligned: float = 0.95, size: int = 48,
                              seed: int = 0, waterbird_digits=WATERBIRD_DIGITS, landbird_digits=LANDBIRD_DIGITS,
                              scale: float = 0.75, counts: dict[str, list[int]] | None = None,
                              layout: str = "group_dro", jpegs: JpegWriter | None = None) -> dict[str, list[int]]:
    """Write the mini Waterbirds into ``root/<release folder of layout>`` (``group_dro``:
    waterbird_complete95_forest2water2, ``wilds``: waterbirds_v1.0); return the group counts per split (what the
    loader's count check should expect). ``metadata.csv`` is written last, atomically, once every image is on disk.

    ``counts`` ({split: [landbird/land, landbird/water, waterbird/land, waterbird/water]}, the rehearsal stand-ins)
    gives every split's group counts instead of ``n_*``, ``waterbird_share`` and ``aligned``; the digits are then
    reused once each kind's are spent (the real counts need 11,788 images, the embedded set has 5,000 digits)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    if counts is not None and sorted(counts) != sorted(SPLIT_CODES):
        raise ValueError(f"counts {counts}: expected group counts for each split of {', '.join(SPLIT_CODES)}")
    x, digits = load_embedded_digits()
    rng = np.random.default_rng(seed)
    kinds = {0: np.flatnonzero(np.isin(digits, landbird_digits)), 1: np.flatnonzero(np.isin(digits, waterbird_digits))}
    pools = {y: list(rng.permutation(kind)) for y, kind in kinds.items()}
    folder = Path(root) / LAYOUTS[layout]
    out = jpegs or JpegWriter()
    groups_of, rows, n_place = {}, [], {0: 0, 1: 0}
    for split, n, align in (("train", n_train, aligned), ("val", n_val, None), ("test", n_test, None)):
        groups_of[split] = split_groups(n, waterbird_share, align) if counts is None else list(counts[split])
        groups = rng.permutation(np.repeat(np.arange(4), groups_of[split]))
        for g in groups:
            y, place = int(g) // 2, int(g) % 2
            if not pools[y]:
                if counts is None:
                    raise ValueError(f"mini Waterbirds: not enough embedded digits for {n_train + n_val + n_test} "
                                     f"images with waterbird_share {waterbird_share}")
                pools[y] = list(rng.permutation(kinds[y]))
            i = int(pools[y].pop())
            img_id = len(rows) + 1
            name = f"{species_folder(int(digits[i]), waterbird_digits)}/Digit_{int(digits[i])}_{img_id:05d}.jpg"
            out.put(folder / name, compose(x[i], place, size, rng, scale))
            n_place[place] += 1
            category = PLACES[place][n_place[place] % 2]
            rows.append([img_id, name, y, SPLIT_CODES[split], place, f"{category}/{n_place[place]:08d}.jpg"])
    out.flush()
    with atomic_path(folder / "metadata.csv") as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(COLUMNS)
            writer.writerows(rows)
    return groups_of
