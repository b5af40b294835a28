"""Wang et al.'s COCO split files (config ``coco.source: wang``) for a COCO 2014 folder, as the ``wang`` reader
(``debias.data.coco.read_wang_source``) reads them (protocol sheet coco_gender.md, 2.1):

- ``object_id.map``: {'id2object': {0..78: name}, 'object2id': {name: id}}, names with '_' for spaces, in the
  repository's own order (0 toilet, 1 teddy_bear, 2 sports_ball, 3 bicycle, ..., 78 sink; the order between is not
  published: here the other 74 in a seeded order);
- ``{train,val,test}.data``: lists of {'file_name', 'image_id', 'objects' (79 values 0/1 in that order), 'gender'
  ([1, 0] man, [0, 1] woman)}; train = the gendered images of train2014, val and test = disjoint parts of val2014
  with the requested gender counts;
- ``{split}_ratio_{1,2,3}.ids``: sets of positions in the split list whose objects' man:woman ratios are all
  within γ, by the captions source's own γ-subset algorithm (``debias.data.coco.gamma_subset``);
all Python-2 pickles (protocol 2, byte strings), read with latin1 as the real ones.

The images and their genders and objects come from the instances and captions files, read by the captions
source's reader (``read_captions_split``), so both sources see the same images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from debias.data import coco
from debias.data.mini.py2_pickle import py2_dump

FIRST_COLUMNS = ("toilet", "teddy_bear", "sports_ball", "bicycle")  # the real file's first four, in its order
LAST_COLUMN = "sink"


def wang_columns(names: list[str], seed: int = 0) -> list[str]:
    """The 79 object names in Wang's order: the four known first, sink last, the rest in a seeded order."""
    known = [*FIRST_COLUMNS, LAST_COLUMN]
    absent = [n for n in known if n not in names]
    if absent or len(names) != coco.NUM_OBJECTS:
        raise ValueError(f"object names {names[:5]}...: expected COCO's {coco.NUM_OBJECTS} non-person categories with "
                         f"{', '.join(known)} (missing: {', '.join(absent) or 'none'})")
    rest = [n for n in names if n not in known]
    order = np.random.default_rng(seed).permutation(len(rest))
    return [*FIRST_COLUMNS, *(rest[i] for i in order), LAST_COLUMN]


def entries(split: coco.Split, columns: list[int]) -> list[dict]:
    """Wang's entries of ``split``, objects reordered to ``columns`` (indices into the split's own columns)."""
    return [{"file_name": name, "image_id": int(image_id), "objects": [int(v) for v in objects[columns]],
             "gender": [1, 0] if g == 0 else [0, 1]}
            for name, image_id, objects, g in zip(split.file_name, split.image_id, split.objects, split.gender)]


def val_test(val2014: coco.Split, val_genders: list[int], seed: int = 0,
             where: str = "val2014") -> tuple[np.ndarray, np.ndarray]:
    """Positions of val2014 for val ([men, women] = ``val_genders``, drawn at random) and test (the rest), sorted."""
    rng = np.random.default_rng(seed)
    picked = []
    for g, n in enumerate(val_genders):
        pool = np.flatnonzero(val2014.gender == g)
        if n > len(pool):
            raise ValueError(f"{where}: {len(pool)} images of gender {g} ({'man' if g == 0 else 'woman'}); "
                             f"expected at least the {n} that val asks for (val_genders {val_genders})")
        picked.append(rng.choice(pool, n, replace=False))
    val = np.sort(np.concatenate(picked))
    return val, np.setdiff1d(np.arange(len(val2014)), val)


def write_wang_splits(coco_root: str | Path, wang_dir: str | Path, val_genders: list[int], seed: int = 0) -> dict:
    """Write the 13 files into ``wang_dir`` from ``coco_root``'s annotations; return {file stem: images}."""
    ann = Path(coco_root) / "annotations"
    train, _, names = coco.read_captions_split(ann / "instances_train2014.json", ann / "captions_train2014.json")
    val2014, _, names_val = coco.read_captions_split(ann / "instances_val2014.json", ann / "captions_val2014.json")
    if names_val != names:
        raise ValueError(f"{ann}: train2014 and val2014 declare different categories")
    order = wang_columns(names, seed)
    columns = np.array([names.index(n) for n in order])
    val_idx, test_idx = val_test(val2014, val_genders, seed, str(ann / "instances_val2014.json"))
    splits = {"train": train, "val": coco.take(val2014, val_idx), "test": coco.take(val2014, test_idx)}
    wang_dir = Path(wang_dir)
    py2_dump({"id2object": dict(enumerate(order)), "object2id": {n: j for j, n in enumerate(order)}},
             wang_dir / "object_id.map")
    written = {}
    for name, split in splits.items():
        py2_dump(entries(split, columns), wang_dir / f"{name}.data")
        written[name] = len(split)
        for gamma in coco.GAMMAS:
            subset = coco.gamma_subset(split.objects, split.gender, gamma, seed)
            py2_dump({int(i) for i in subset}, wang_dir / f"{name}_ratio_{gamma}.ids")
            written[f"{name}_ratio_{gamma}"] = len(subset)
    return written
