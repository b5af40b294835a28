"""The COCO gender subset (Wang et al. 2019): 79 object labels and a binary gender per image.

Two sources, one result (``Records``: file name, image id, 79-long 0/1 object vector, gender 0 = man,
1 = woman, per split train / val / test; plus the γ-subsets as index sets):

- ``wang``: the published split files of Balanced-Datasets-Are-Not-Enough (``object_multilabel/data/``):
  ``{train,val,test}.data`` (lists of dicts file_name, image_id, objects, gender one-hot), the γ ("ratio")
  subsets ``{split}_ratio_{1,2,3}.ids`` (sets of positions in the split list) and ``object_id.map``;
  Python-2 pickles, read with latin1 encoding. Columns in Wang's order.
- ``captions``: COCO 2014 itself, read with pycocotools. Objects: the 80 instance categories minus person, the
  real (non-contiguous) category ids sorted and mapped to 79 columns. Gender from the five captions
  (``caption_gender``): an image is "man" if some caption has a word of ``MAN_WORDS`` and none a word of
  ``WOMAN_WORDS``, and vice versa; images with both or neither are dropped, as are images without a person
  instance or without any other object. train2014 gives train; val2014 is split into val and test by a seeded
  permutation of its image ids (first half val). γ-subsets by ``gamma_subset``.

Images live in ``<images_root>/train2014/`` and ``val2014/`` (the folder comes from the file name).
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from debias.errors import DataFormatError

SPLITS = ("train", "val", "test")
GAMMAS = (1, 2, 3)
PERSON_CATEGORY = "person"
NUM_OBJECTS = 79

# Caption words (lower case, whole words). The rule of Zhao et al. (2017) as used by Wang et al.; their exact
# lists are not published (protocol sheet 2.1, [unverified]), these are ours.
MAN_WORDS = frozenset({"man", "men", "male", "males", "boy", "boys", "gentleman", "gentlemen", "guy", "guys",
                       "husband", "father", "dad", "son", "brother", "businessman", "policeman"})
WOMAN_WORDS = frozenset({"woman", "women", "female", "females", "girl", "girls", "lady", "ladies", "wife",
                         "mother", "mom", "daughter", "sister", "businesswoman", "policewoman"})
# The 80 instance categories of COCO 2014 (id: name); ids are not contiguous (12, 26, 29, 30, 45, 66, 68, 69, 71,
# 83 are unused). The mini dataset writes these; the loader reads whatever the annotation file declares.
COCO_CATEGORIES = {
    1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus", 7: "train", 8: "truck",
    9: "boat", 10: "traffic light", 11: "fire hydrant", 13: "stop sign", 14: "parking meter", 15: "bench",
    16: "bird", 17: "cat", 18: "dog", 19: "horse", 20: "sheep", 21: "cow", 22: "elephant", 23: "bear",
    24: "zebra", 25: "giraffe", 27: "backpack", 28: "umbrella", 31: "handbag", 32: "tie", 33: "suitcase",
    34: "frisbee", 35: "skis", 36: "snowboard", 37: "sports ball", 38: "kite", 39: "baseball bat",
    40: "baseball glove", 41: "skateboard", 42: "surfboard", 43: "tennis racket", 44: "bottle", 46: "wine glass",
    47: "cup", 48: "fork", 49: "knife", 50: "spoon", 51: "bowl", 52: "banana", 53: "apple", 54: "sandwich",
    55: "orange", 56: "broccoli", 57: "carrot", 58: "hot dog", 59: "pizza", 60: "donut", 61: "cake", 62: "chair",
    63: "couch", 64: "potted plant", 65: "bed", 67: "dining table", 70: "toilet", 72: "tv", 73: "laptop",
    74: "mouse", 75: "remote", 76: "keyboard", 77: "cell phone", 78: "microwave", 79: "oven", 80: "toaster",
    81: "sink", 82: "refrigerator", 84: "book", 85: "clock", 86: "vase", 87: "scissors", 88: "teddy bear",
    89: "hair drier", 90: "toothbrush",
}
_WORD = re.compile(r"[a-z]+")


class CocoFormatError(DataFormatError):
    """Bad input: the message names the file and the entry."""


@dataclass
class Split:
    file_name: list[str]
    image_id: np.ndarray  # int64 [N]
    objects: np.ndarray  # uint8 [N, 79]
    gender: np.ndarray  # int64 [N], 0 = man, 1 = woman

    def __len__(self) -> int:
        return len(self.file_name)

    def counts(self) -> dict[str, int]:
        return {"man": int((self.gender == 0).sum()), "woman": int((self.gender == 1).sum())}


@dataclass
class Records:
    splits: dict[str, Split]
    columns: list[str]  # object names, one per column
    subsets: dict[str, dict[int, list[int]]] = field(default_factory=dict)  # split -> γ -> sorted positions
    category_ids: list[int] | None = None  # captions source: the COCO category id of every column


# -- captions source ----------------------------------------------------------------------------------------


def caption_gender(captions: list[str]) -> int | None:
    """0 (man) / 1 (woman) from an image's captions; None where both or neither gender is mentioned."""
    words = set()
    for c in captions:
        words.update(_WORD.findall(c.lower()))
    man, woman = bool(words & MAN_WORDS), bool(words & WOMAN_WORDS)
    if man == woman:
        return None
    return 0 if man else 1


def _load_coco(path: Path):
    import contextlib
    import io
    import json

    from pycocotools.coco import COCO

    if not path.is_file():
        raise FileNotFoundError(f"{path}: COCO annotation file missing (config key coco.root)")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            return COCO(str(path))
    except (json.JSONDecodeError, KeyError, TypeError, AssertionError) as exc:  # AssertionError: not a JSON object
        raise CocoFormatError(f"{path}: not a COCO annotation file ({type(exc).__name__}: {exc})") from exc


def _require_lists(coco_obj, path: Path, keys: tuple[str, ...], kind: str) -> None:
    absent = [k for k in keys if k not in coco_obj.dataset]
    if absent:
        raise CocoFormatError(f"{path}: no {', '.join(map(repr, absent))} in the file; expected a COCO {kind} file "
                              f"with {', '.join(map(repr, keys))}")


def object_columns(instances) -> tuple[list[int], list[str]]:
    """The non-person categories, sorted by their COCO id: (category ids, names with '_' for spaces)."""
    cats = sorted(instances.loadCats(instances.getCatIds()), key=lambda c: c["id"])
    kept = [c for c in cats if c["name"] != PERSON_CATEGORY]
    return [c["id"] for c in kept], [c["name"].replace(" ", "_") for c in kept]


def read_captions_split(instances_path: str | Path, captions_path: str | Path) -> tuple[Split, list[int], list[str]]:
    """One COCO annotation year-split (e.g. train2014) → Split of the images with a caption gender."""
    instances_path, captions_path = Path(instances_path), Path(captions_path)
    inst, caps = _load_coco(instances_path), _load_coco(captions_path)
    _require_lists(inst, instances_path, ("images", "annotations", "categories"), "instances")
    _require_lists(caps, captions_path, ("images", "annotations"), "captions")
    cat_ids, names = object_columns(inst)
    if len(cat_ids) != NUM_OBJECTS:
        raise CocoFormatError(f"{instances_path}: {len(cat_ids)} non-person categories, expected {NUM_OBJECTS}")
    person = [c["id"] for c in inst.loadCats(inst.getCatIds()) if c["name"] == PERSON_CATEGORY]
    if not person:
        raise CocoFormatError(f"{instances_path}: no category named 'person'")
    column = {cid: j for j, cid in enumerate(cat_ids)}
    known = set(column) | set(person)
    objects: dict[int, np.ndarray] = {}
    has_person: set[int] = set()
    for ann in inst.dataset.get("annotations", []):
        if ann.get("category_id") not in known:
            raise CocoFormatError(f"{instances_path}: annotation id {ann.get('id')} (image {ann.get('image_id')}) "
                                  f"has unknown category id {ann.get('category_id')!r}")
        if ann["image_id"] not in inst.imgs:
            raise CocoFormatError(f"{instances_path}: annotation id {ann.get('id')} names image id "
                                  f"{ann['image_id']}, which is not in 'images'")
        if ann["category_id"] in person:
            has_person.add(ann["image_id"])
        else:
            objects.setdefault(ann["image_id"], np.zeros(NUM_OBJECTS, np.uint8))[column[ann["category_id"]]] = 1
    stray = [a for a in caps.dataset["annotations"] if a.get("image_id") not in inst.imgs]
    if stray:  # e.g. captions_train2017 beside instances_train2014: the images both files share would pass unnoticed
        raise CocoFormatError(f"{captions_path}: {len(stray)} of {len(caps.dataset['annotations'])} captions name an "
                              f"image that is not in {instances_path}'s 'images' (first: annotation id "
                              f"{stray[0].get('id')}, image id {stray[0].get('image_id')!r}); expected the captions "
                              "and instances files of the same year and split")
    rows = []
    for img_id in sorted(inst.imgs):
        if img_id not in has_person or img_id not in objects:
            continue
        anns = caps.imgToAnns.get(img_id, [])
        bad = next((a for a in anns if not isinstance(a.get("caption"), str)), None)
        if bad is not None:
            raise CocoFormatError(f"{captions_path}: annotation id {bad.get('id')} (image {img_id}) has no 'caption' "
                                  "string")
        g = caption_gender([a["caption"] for a in anns])
        if g is not None:
            if not inst.imgs[img_id].get("file_name"):
                raise CocoFormatError(f"{instances_path}: image id {img_id} has no 'file_name'")
            rows.append((inst.imgs[img_id]["file_name"], img_id, objects[img_id], g))
    if not rows:
        raise CocoFormatError(f"{instances_path} + {captions_path}: no image has a person, an object and one "
                              "caption gender")
    split = Split([r[0] for r in rows], np.array([r[1] for r in rows], np.int64),
                  np.stack([r[2] for r in rows]), np.array([r[3] for r in rows], np.int64))
    return split, cat_ids, names


def take(split: Split, idx: np.ndarray) -> Split:
    return Split([split.file_name[i] for i in idx], split.image_id[idx], split.objects[idx], split.gender[idx])


def split_val_test(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of val2014's images for val (first half of a seeded permutation) and test (the rest), sorted."""
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2 :])


def read_captions_source(root: str | Path, split_seed: int, gammas=GAMMAS, gamma_seed: int = 0) -> Records:
    root = Path(root)
    ann = root / "annotations"
    train, cat_ids, names = read_captions_split(ann / "instances_train2014.json", ann / "captions_train2014.json")
    val2014, cat_ids_v, _ = read_captions_split(ann / "instances_val2014.json", ann / "captions_val2014.json")
    if cat_ids_v != cat_ids:
        raise CocoFormatError(f"{ann}: train2014 and val2014 have different categories")
    val_idx, test_idx = split_val_test(len(val2014), split_seed)
    splits = {"train": train, "val": take(val2014, val_idx), "test": take(val2014, test_idx)}
    subsets = {s: {g: gamma_subset(sp.objects, sp.gender, g, gamma_seed).tolist() for g in gammas}
               for s, sp in splits.items()}
    return Records(splits, names, subsets, cat_ids)


# -- γ-subsets ----------------------------------------------------------------------------------------------


def ratio_violations(objects: np.ndarray, gender: np.ndarray, gamma: float) -> np.ndarray:
    """Per object: max(#man, #woman) − γ · min(#man, #woman) where that exceeds 0 (else 0)."""
    man = objects[gender == 0].sum(0).astype(np.int64)
    woman = objects[gender == 1].sum(0).astype(np.int64)
    excess = np.maximum(man, woman) - gamma * np.minimum(man, woman)
    return np.where(excess > 0, excess, 0)


def gamma_subset(objects: np.ndarray, gender: np.ndarray, gamma: float, seed: int = 0) -> np.ndarray:
    """Positions of a subset in which every object's man:woman ratio max/min is ≤ γ (absent objects allowed).

    Greedy: while some object violates the bound, take the object with the largest excess
    e = max − γ·min; on the majority gender's side, drop ceil(e) of its images that contain it, preferring
    images whose other objects are least needed on that side (fewest objects where that gender is not in
    surplus), ties broken by a seeded random order. Only images are dropped, never added; each round drops at
    least one, so it ends, and it ends only when no object violates the bound.
    """
    objects = np.asarray(objects).astype(bool)
    gender = np.asarray(gender)
    keep = np.ones(len(gender), bool)
    tiebreak = np.random.default_rng(seed).random(len(gender))
    while True:
        excess = ratio_violations(objects[keep], gender[keep], gamma)
        if not excess.any():
            return np.flatnonzero(keep)
        c = int(np.argmax(excess))
        man = int(objects[keep & (gender == 0), c].sum())
        woman = int(objects[keep & (gender == 1), c].sum())
        side = 0 if man > woman else 1
        drop_n = int(np.ceil(excess[c]))
        cand = np.flatnonzero(keep & (gender == side) & objects[:, c])
        side_counts = objects[keep & (gender == side)].sum(0)
        other_counts = objects[keep & (gender != side)].sum(0)
        needed = side_counts <= gamma * other_counts  # objects where this side is not in surplus
        cost = (objects[cand] & needed).sum(1)
        order = np.lexsort((tiebreak[cand], cost))
        keep[cand[order[:drop_n]]] = False


# -- Wang et al.'s split files ------------------------------------------------------------------------------

WANG_FILES = ("object_id.map",) + tuple(f"{s}.data" for s in SPLITS) + tuple(
    f"{s}_ratio_{g}.ids" for s in SPLITS for g in GAMMAS)


_COCO_FILE = re.compile(r"COCO_([a-z]+\d{4})_(\d+)\.jpg$")  # COCO 2014's file names: split+year, image id


def _unpickle(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Wang et al.'s split file missing (config key coco.wang_dir)")
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh, encoding="latin1")
    except Exception as exc:  # any unpickling failure is a malformed file
        raise CocoFormatError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from exc


def read_wang_split(path: str | Path, num_objects: int = NUM_OBJECTS) -> Split:
    path = Path(path)
    entries = _unpickle(path)
    if not isinstance(entries, list) or not entries:
        raise CocoFormatError(f"{path}: expected a non-empty list of dicts, found {type(entries).__name__}")
    names, ids, objs, genders = [], [], [], []
    for i, e in enumerate(entries):
        where = f"{path}, entry {i}"
        if not isinstance(e, dict) or not {"file_name", "image_id", "objects", "gender"} <= set(e):
            raise CocoFormatError(f"{where}: expected a dict with file_name, image_id, objects, gender; found "
                                  f"{sorted(e) if isinstance(e, dict) else type(e).__name__}")
        o = np.asarray(e["objects"])
        if o.shape != (num_objects,) or not np.isin(o, (0, 1)).all():
            shown = f"shape {o.shape}" if o.shape != (num_objects,) else \
                f"{o.dtype} values {sorted(set(o.tolist()), key=repr)[:5]}"
            raise CocoFormatError(f"{where} ({e['file_name']}): objects must be {num_objects} values 0/1, "
                                  f"found {shown}")
        g = list(e["gender"]) if isinstance(e["gender"], (list, tuple, np.ndarray)) else e["gender"]
        if g not in ([1, 0], [0, 1]):
            raise CocoFormatError(f"{where} ({e['file_name']}): gender must be one-hot [1, 0] or [0, 1], found {g}")
        try:
            image_id = int(e["image_id"])
        except (TypeError, ValueError):
            raise CocoFormatError(f"{where} ({e['file_name']}): image_id must be an integer, found "
                                  f"{e['image_id']!r}") from None
        m = _COCO_FILE.match(str(e["file_name"]))  # a name in another form is refused with its split when decoding
        if m and int(m.group(2)) != image_id:
            raise CocoFormatError(f"{where} ({e['file_name']}): image_id {image_id} is not the file name's "
                                  f"{int(m.group(2))}; expected the COCO id the file is named by")
        names.append(str(e["file_name"]))
        ids.append(image_id)
        objs.append(o.astype(np.uint8))
        genders.append(g.index(1))
    return Split(names, np.array(ids, np.int64), np.stack(objs), np.array(genders, np.int64))


def read_wang_ids(path: str | Path, n: int) -> list[int]:
    path = Path(path)
    ids = _unpickle(path)
    if not isinstance(ids, (set, frozenset, list)):
        raise CocoFormatError(f"{path}: expected a set of positions, found {type(ids).__name__}")
    bad = [i for i in ids if not isinstance(i, int) or not 0 <= i < n]
    if bad:
        raise CocoFormatError(f"{path}: positions {sorted(map(str, bad))[:5]} outside 0..{n - 1} (the split's size)")
    return sorted(ids)


def _require_disjoint(splits: dict[str, Split], folder: Path) -> None:
    """Wang et al.'s val and test are disjoint halves of val2014 (and train is train2014): an image in two splits
    would leak test into model selection."""
    names = list(splits)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = np.intersect1d(splits[a].image_id, splits[b].image_id)
            if shared.size:
                raise CocoFormatError(f"{folder / f'{a}.data'} and {folder / f'{b}.data'} share {shared.size} "
                                      f"image(s) (image_id {', '.join(map(str, shared[:3]))}"
                                      f"{', ...' if shared.size > 3 else ''}); expected disjoint splits")


def read_wang_source(wang_dir: str | Path) -> Records:
    wang_dir = Path(wang_dir)
    idmap = _unpickle(wang_dir / "object_id.map")
    try:
        columns = [idmap["id2object"][j] for j in range(NUM_OBJECTS)]
    except (KeyError, TypeError) as exc:
        raise CocoFormatError(f"{wang_dir / 'object_id.map'}: expected {{'id2object': {{0..78: name}}}}, "
                              f"missing {exc}") from exc
    splits = {s: read_wang_split(wang_dir / f"{s}.data") for s in SPLITS}
    _require_disjoint(splits, wang_dir)
    subsets = {s: {g: read_wang_ids(wang_dir / f"{s}_ratio_{g}.ids", len(sp)) for g in GAMMAS}
               for s, sp in splits.items()}
    return Records(splits, columns, subsets)


# -- images -------------------------------------------------------------------------------------------------


def image_path(images_root: str | Path, file_name: str) -> Path:
    """COCO_train2014_….jpg → <root>/train2014/…; COCO_val2014_… → <root>/val2014/…."""
    m = _COCO_FILE.match(file_name)
    if not m:
        raise CocoFormatError(f"image file name {file_name!r} is not COCO's COCO_<split><year>_<12 digits>.jpg")
    return Path(images_root) / m.group(1) / file_name


def decode_resize(path: Path, short_side: int, size: int) -> np.ndarray:
    """Decode, resize the short side to ``short_side`` (bilinear, as torchvision's Resize), centre-crop
    ``size`` x ``size``: uint8 [3, size, size]."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        scale = short_side / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        im = im.resize((nw, nh), Image.BILINEAR)
        left, top = (nw - size) // 2, (nh - size) // 2
        im = im.crop((left, top, left + size, top + size))
        return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()


def decode_split(split: Split, images_root: str | Path, short_side: int, size: int, threads: int = 4,
                 progress: bool = True, where: str = "") -> np.ndarray:
    """All images of a split as uint8 [N, 3, size, size], decoded into one preallocated array
    (``debias.data.decode``); a missing or undecodable image stops with its name."""
    from debias.data.decode import decode_all

    paths = []
    for i, name in enumerate(split.file_name):  # every name and file checked before minutes of decoding
        try:
            paths.append(image_path(images_root, name))
        except CocoFormatError as exc:
            raise CocoFormatError(f"{where}entry {i} (image id {split.image_id[i]}): {exc}") from None
        if not paths[-1].is_file():
            raise FileNotFoundError(f"{where}entry {i} (image id {split.image_id[i]}): image {paths[-1]} missing "
                                    "(config key coco.root: images are read from <root>/train2014/ and <root>/val2014/)")

    def one(i: int) -> np.ndarray:
        path = paths[i]
        try:
            return decode_resize(path, short_side, size)
        except Exception as exc:
            raise CocoFormatError(f"{where}entry {i} (image id {split.image_id[i]}): {path} does not decode "
                                  f"({type(exc).__name__}: {exc})") from exc

    return decode_all(len(split), one, (3, size, size), threads, progress, desc=f"decode {where.rstrip(', ')}".rstrip())
