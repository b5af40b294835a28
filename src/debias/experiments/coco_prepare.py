"""COCO gender leakage (paper 000), stage prepare (rule coco_prepare): labels of both sources (``debias.data.coco``)
and the images decoded once (short side, centre crop) into ``data.pt`` (uint8); ``labels.pt`` holds objects, genders
and γ-subsets (no images), so the leakage and table jobs never load the images; ``recipe.json`` the sha256 of both,
the recipe and the counts (Table 1)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from debias.data import coco
from debias.io import sha256_file, torch_save, write_json

log = logging.getLogger(__name__)


def read_records(section: dict[str, Any]) -> coco.Records:
    if section["source"] == "wang":
        return coco.read_wang_source(section["wang_dir"])
    return coco.read_captions_source(section["root"], section["split_seed"], coco.GAMMAS, section["gamma_seed"])


def prepare(section: dict[str, Any], data_out: str, labels_out: str, recipe_out: str, threads: int = 4) -> dict:
    rec = read_records(section)
    img = section["image"]
    images = {s: coco.decode_split(sp, section["root"], img["short_side"], img["stored"], threads,
                                   where=f"{s} split, ") for s, sp in rec.splits.items()}
    labels = {
        "columns": rec.columns,
        "splits": {s: {"objects": torch.from_numpy(sp.objects), "gender": torch.from_numpy(sp.gender),
                       "image_id": torch.from_numpy(sp.image_id)} for s, sp in rec.splits.items()},
        "subsets": {s: {int(g): torch.tensor(ids, dtype=torch.long) for g, ids in sub.items()}
                    for s, sub in rec.subsets.items()},
    }
    torch_save({s: torch.from_numpy(x) for s, x in images.items()}, data_out)
    torch_save(labels, labels_out)
    counts = {s: sp.counts() for s, sp in rec.splits.items()}
    for s, sub in rec.subsets.items():
        for g, ids in sub.items():
            counts[f"{s}_gamma{g}"] = coco.take(rec.splits[s], np.asarray(ids, dtype=np.int64)).counts()
    recipe = {"source": section["source"], "image": img, "columns": rec.columns,
              "category_ids": rec.category_ids, "counts": counts,
              "files": {"root": section["root"], "wang_dir": section.get("wang_dir")},
              "data_sha256": sha256_file(data_out), "labels_sha256": sha256_file(labels_out)}
    if section["source"] != "wang":
        recipe.update(split_seed=section["split_seed"], gamma_seed=section["gamma_seed"],
                      man_words=sorted(coco.MAN_WORDS), woman_words=sorted(coco.WOMAN_WORDS))
    write_json(recipe_out, recipe)
    log.info("prepared %s: %s", data_out, counts)
    return recipe
