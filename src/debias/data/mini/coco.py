"""A COCO-2014-format gender dataset written from the embedded digits, read by the same pycocotools loader.

Layout as COCO's: ``<root>/annotations/{instances,captions}_{train,val}2014.json`` (images, annotations with
bbox / area / iscrowd / segmentation, the 80 real categories with their non-contiguous ids) and JPEGs
``<root>/{train,val}2014/COCO_{split}2014_<12-digit id>.jpg``.

Each image is a grey canvas holding 1-3 digits in the cells of a 2 x 2 grid; digit d is an "object" of category
``DIGIT_CATEGORY[d]`` (one annotation each, with its box) and every image has a person annotation. The captions
say "a man ..." or "a woman ..." (a few say "a person ...", and are dropped by the caption rule, as images that
mention both genders are).

The planted bias: the gender is drawn first (``woman_share`` women) and each digit of an image is drawn from a
gender-dependent distribution, digits 0-4 more likely for men and 5-9 for women (``skew``), so the object
vector predicts gender (dataset leakage well above chance); a weak visual cue, a faint brightening of the
canvas background for women (``cue`` grey levels), lets a classifier pick up gender beyond the objects, which it
can then leak through its predictions (amplification).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from debias.data.coco import COCO_CATEGORIES
from debias.data.mini.jpeg import JpegWriter
from debias.data.mini.mnist import load_embedded_digits, stratified_split
from debias.io import write_text

# digit -> COCO category id (non-contiguous, spanning the gaps of COCO's ids)
DIGIT_CATEGORY = {0: 3, 1: 13, 2: 18, 3: 27, 4: 44, 5: 47, 6: 62, 7: 67, 8: 72, 9: 90}
PERSON = 1


def _digit_probs(skew: float) -> np.ndarray:
    """[2, 10]: per gender, the probability of each digit; 0-4 favoured by men, 5-9 by women."""
    man = np.r_[np.full(5, skew), np.full(5, 1 - skew)]
    return np.stack([man / man.sum(), man[::-1] / man.sum()])


def _canvas(digits: list[np.ndarray], cells: list[int], woman: bool, cue: int, size: int, cell: int,
            rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    base = 40 + (cue if woman else 0) + rng.integers(-6, 7)
    img = np.full((size, size), base, np.int32)
    img += rng.integers(-8, 9, img.shape)  # texture, so the cue is weak against the noise
    off = (size - 2 * cell) // 2
    for d, c in zip(digits, cells):
        small = np.asarray(Image.fromarray(d).resize((cell, cell), Image.BILINEAR), np.int32)
        r, k = off + (c // 2) * cell, off + (c % 2) * cell
        img[r : r + cell, k : k + cell] = np.maximum(img[r : r + cell, k : k + cell], small)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_embedded_coco(root: str | Path, n_train: int = 1200, n_val: int = 800, woman_share: float = 0.3,
                        skew: float = 0.75, cue: int = 12, size: int = 40, cell: int = 16,
                        neutral_share: float = 0.04, seed: int = 0, genders: dict[str, list[int]] | None = None,
                        jpegs: JpegWriter | None = None) -> dict:
    """Write the mini COCO; return the counts of images per split and gender. The annotation files are written
    last, once every image they name is on disk.

    ``genders`` ({'train': [men, women], 'val': [men, women]}, the rehearsal stand-ins) gives each split's exact
    gender counts instead of ``n_*`` and ``woman_share`` (in a random order); such a split has no neutral images.
    """
    root = Path(root)
    if genders is not None and sorted(genders) != ["train", "val"]:
        raise ValueError(f"genders {genders}: expected [men, women] for each of train, val")
    x, y = load_embedded_digits()
    tr, te = stratified_split(y, 100, seed)
    rng = np.random.default_rng(seed)
    probs = _digit_probs(skew)
    categories = [{"id": i, "name": n, "supercategory": "object" if i != PERSON else "person"}
                  for i, n in COCO_CATEGORIES.items()]
    counts, files = {}, {}
    out = jpegs or JpegWriter()
    ann_id = 1
    for split, n, pool, first_id in (("train", n_train, tr, 100_000), ("val", n_val, te, 500_000)):
        by_digit = {d: pool[y[pool] == d] for d in range(10)}
        folder = root / f"{split}2014"
        images, instances, captions = [], [], []
        counts[split] = {"man": 0, "woman": 0, "neutral": 0}
        women = None if genders is None else rng.permutation(np.repeat([False, True], genders[split]))
        for k in range(n if women is None else len(women)):
            img_id = first_id + 7 * k  # sparse ids, as COCO's
            woman = bool(rng.random() < woman_share) if women is None else bool(women[k])
            n_obj = int(rng.integers(1, 4))
            digits = rng.choice(10, n_obj, p=probs[int(woman)])
            cells = rng.permutation(4)[:n_obj].tolist()
            canvas = _canvas([x[rng.choice(by_digit[d])] for d in digits], cells, woman, cue, size, cell, rng)
            file_name = f"COCO_{split}2014_{img_id:012d}.jpg"
            out.put(folder / file_name, canvas)
            images.append({"id": img_id, "file_name": file_name, "width": size, "height": size,
                           "license": 1, "coco_url": "", "date_captured": "2013-11-14 16:28:13"})
            off = (size - 2 * cell) // 2
            boxes = [[float(off + (c % 2) * cell), float(off + (c // 2) * cell), float(cell), float(cell)]
                     for c in cells]
            for d, box in zip(digits, boxes):
                instances.append(_annotation(ann_id, img_id, DIGIT_CATEGORY[int(d)], box))
                ann_id += 1
            instances.append(_annotation(ann_id, img_id, PERSON, [0.0, 0.0, float(size), float(size)]))
            ann_id += 1
            names = [COCO_CATEGORIES[DIGIT_CATEGORY[int(d)]] for d in digits]
            neutral = bool(rng.random() < neutral_share) if women is None else False
            who = "person" if neutral else ("woman" if woman else "man")
            counts[split]["neutral" if neutral else who] += 1
            for text in _captions(who, names, rng):
                captions.append({"id": ann_id, "image_id": img_id, "caption": text})
                ann_id += 1
        files[split] = (images, instances, captions)
    out.flush()
    info = {"description": "debias-repro mini COCO (embedded digits)", "version": "1.0", "year": 2014}
    licenses = [{"id": 1, "name": "CC BY 4.0", "url": ""}]
    ann_dir = root / "annotations"
    for split, (images, instances, captions) in files.items():
        write_text(ann_dir / f"instances_{split}2014.json", json.dumps(
            {"info": info, "licenses": licenses, "images": images, "annotations": instances,
             "categories": categories}))
        write_text(ann_dir / f"captions_{split}2014.json", json.dumps(
            {"info": info, "licenses": licenses, "images": images, "annotations": captions}))
    return counts


def _annotation(ann_id: int, img_id: int, cat: int, box: list[float]) -> dict:
    x, y, w, h = box
    return {"id": ann_id, "image_id": img_id, "category_id": cat, "bbox": box, "area": w * h, "iscrowd": 0,
            "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]}


_TEMPLATES = ("A {who} with a {a}.", "A {who} standing next to a {a}.", "There is a {who} near the {a}.",
              "A {who} and a {a} in a room.", "Photo of a {who} beside a {a}.")


def _captions(who: str, names: list[str], rng: np.random.Generator) -> list[str]:
    return [t.format(who=who, a=names[int(rng.integers(len(names)))]) for t in _TEMPLATES]
