"""Stand-ins for every dataset the full config (config/config.yaml) reads, in the real on-disk layouts, so that its
code path can run (the rehearsal tests, tests/test_rehearsal.py) where the real data cannot be downloaded.

    python tools/rehearsal/make_standins.py OUT_DIR [--counts small|full] [--datasets mnist fairface ...]
                                            [--workers N] [--image-size PX] [--config config/config.yaml]

then run the full config on them, targets first (docs/full_scale.md, "Rehearsing the full config"):

    snakemake TARGETS --cores 2 --configfile config/config.yaml OUT_DIR/roots.yaml tools/rehearsal/rehearsal.yaml \
        --config results=results/rehearsal

What is written (the images are the embedded handwritten digits of the mini datasets, src/debias/data/mini/, with
their planted biases; every group count is the real one, or in ``small`` mode the real one divided by the
dataset's divisor in real_counts.py, at least 1: the real relative group proportions, but for the smallest groups
at small counts):

- ``mnist/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``: torchvision's IDX files, MNIST's real class
  counts (60,000 / 10,000) in both modes (the L2RW grid needs nearly all of its 4s and 9s).
- ``fairface/fairface_label_{train,val}.csv`` (``file,age,gender,race,service_test``) and the JPEGs of the
  configured padding's image folder: FairFace's race counts (86,744 / 10,954 in ``full``; a quarter in ``small``).
- ``waterbirds/<release folder of waterbirds.source>/metadata.csv`` and JPEGs under species folders: the published
  group counts (``PUBLISHED_COUNTS``, 11,788 images in ``full``; 34 in ``small``).
- ``coco/annotations/{instances,captions}_{train,val}2014.json`` (pycocotools format, COCO's 80 categories with
  their non-contiguous ids), ``coco/{train,val}2014/COCO_<split>2014_<12-digit id>.jpg`` and Wang et al.'s split
  files in ``coco/wang/`` (train 22,826, val 5,367, test 5,473 with their gender counts in ``full``, 45 / 11 / 11
  in ``small``; val and test disjoint parts of val2014; γ-subsets by the pipeline's own γ algorithm).
- ``pretrained/resnet50-<sha256 prefix>.pth``: a randomly initialised torchvision ResNet-50 state dict.
- ``roots.yaml``: the full config's data roots (and the ResNet-50s' ``model.weights``) pointed at the above,
  ``allow_download: false``;
- ``standins.json``: per dataset the counts written, the counts the project's readers read back (with their
  validation: Waterbirds' check against the published counts, COCO's Wang reader, FairFace's label checks), the
  seconds taken and the bytes on disk.

Each dataset folder must not exist yet (or be empty): stale files of another mode would stay beside new ones.
Measured on 2 busy CPU cores: ``small`` about 15 s (24,500 files, 180 MB), ``full`` 75 s (143,000 files: 395 MB
of data, 770 MB on disk, 1 GB peak memory).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT / "src"), str(HERE)]

import yaml  # noqa: E402

import real_counts  # noqa: E402
from debias.data.mini.jpeg import JpegWriter  # noqa: E402

DATASETS = ("mnist", "fairface", "waterbirds", "coco", "weights")
WEIGHTS_DIR = "pretrained"
SEED = 0


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- writing --------------------------------------------------------------------------------------------------


def write_mnist(out: Path, mode: str, cfg: dict, size: int, jpegs: JpegWriter) -> dict:
    from debias.data.mini.mnist import write_embedded_mnist

    return write_embedded_mnist(out / "mnist", seed=SEED, per_class=real_counts.counts("mnist", mode))


def fairface_image_dir(cfg: dict) -> str:
    ff = cfg["reweighting"]["fairface"]
    return ff["image_dirs"][str(ff["padding"])]


def write_fairface(out: Path, mode: str, cfg: dict, size: int, jpegs: JpegWriter) -> dict:
    from debias.data.mini.fairface import write_embedded_fairface

    return write_embedded_fairface(out / "fairface", fairface_image_dir(cfg), seed=SEED, size=size,
                                   race_counts=real_counts.counts("fairface", mode), jpegs=jpegs)


def write_waterbirds(out: Path, mode: str, cfg: dict, size: int, jpegs: JpegWriter) -> dict:
    from debias.data.mini.waterbirds import write_embedded_waterbirds

    return write_embedded_waterbirds(out / "waterbirds", size=size, seed=SEED, layout=cfg["waterbirds"]["source"],
                                     counts=real_counts.counts("waterbirds", mode), jpegs=jpegs)


def write_coco(out: Path, mode: str, cfg: dict, size: int, jpegs: JpegWriter) -> dict:
    from debias.data.mini.coco import write_embedded_coco
    from wang_splits import write_wang_splits

    genders = real_counts.counts("coco", mode)
    val2014 = [genders["val"][g] + genders["test"][g] for g in (0, 1)]  # val and test: parts of val2014
    images = write_embedded_coco(out / "coco", genders={"train": genders["train"], "val": val2014}, size=size,
                                 cell=int(0.4 * size), neutral_share=0.0, seed=SEED, jpegs=jpegs)
    return {"images": images, "wang": write_wang_splits(out / "coco", out / "coco" / "wang", genders["val"], SEED)}


def write_weights(out: Path, mode: str, cfg: dict, size: int, jpegs: JpegWriter) -> dict:
    from resnet50_weights import write_resnet50_weights

    return {"file": write_resnet50_weights(out / WEIGHTS_DIR, SEED).name}


WRITERS = {"mnist": write_mnist, "fairface": write_fairface, "waterbirds": write_waterbirds, "coco": write_coco,
           "weights": write_weights}
FOLDERS = {"mnist": "mnist", "fairface": "fairface", "waterbirds": "waterbirds", "coco": "coco",
           "weights": WEIGHTS_DIR}


def weights_file(out: Path) -> str | None:
    """The stand-in ResNet-50 file under ``out`` (written by this run or an earlier one), or None."""
    found = sorted((out / WEIGHTS_DIR).glob("resnet50-*.pth"))
    return found[0].name if found else None


def roots(out: Path) -> dict:
    """The full config's keys that say where its data is, pointed at the stand-ins under ``out``."""
    out = out.resolve()
    cfg = {"allow_download": False,
           "mnist": {"root": str(out / "mnist")},
           "reweighting": {"fairface": {"root": str(out / "fairface")}},
           "waterbirds": {"root": str(out / "waterbirds")},
           "coco": {"root": str(out / "coco"), "wang_dir": str(out / "coco" / "wang")},
           "pretrained": {"root": str(out / WEIGHTS_DIR)}}
    name = weights_file(out)
    if name:
        for section in ("coco", "waterbirds"):
            cfg[section]["model"] = {"weights": name}
    return cfg


# -- reading back with the project's readers ------------------------------------------------------------------


def read_mnist_counts(out: Path, cfg: dict, mode: str) -> dict:
    import numpy as np

    from debias.data.mnist import read_mnist

    data = read_mnist(out / "mnist")
    return {split: np.bincount(y.numpy(), minlength=10).tolist() for split, (_, y) in data.items()}


def read_fairface_counts(out: Path, cfg: dict, mode: str) -> dict:
    from collections import Counter

    from debias.data.fairface import label_csv, read_labels

    image_root = out / "fairface" / fairface_image_dir(cfg)
    return {split: dict(Counter(r["race"] for r in read_labels(label_csv(out / "fairface", split), image_root)))
            for split in ("train", "val")}


def read_waterbirds_counts(out: Path, cfg: dict, mode: str) -> dict:
    """The group counts, checked (``check_counts``: a warning naming both tables) against the published ones in
    ``full`` mode, against their scaled copy in ``small`` mode."""
    from debias.data.waterbirds import PUBLISHED_COUNTS, check_counts, group_counts, metadata_file, read_metadata

    meta = read_metadata(metadata_file(out / "waterbirds", cfg["waterbirds"]["source"]))
    missing = [name for name in meta.img_filename if not (meta.path.parent / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{meta.path}: {len(missing)} images missing, e.g. {missing[0]}")
    counts = group_counts(meta)
    expected = {s: tuple(c) for s, c in real_counts.counts("waterbirds", mode).items()}
    return {"groups": counts, "match_expected": check_counts(counts, expected, str(meta.path)),
            "match_published": all(list(counts[s]) == list(c) for s, c in PUBLISHED_COUNTS.items())}


def read_coco_counts(out: Path, cfg: dict, mode: str) -> dict:
    from debias.data import coco

    wang = coco.read_wang_source(out / "coco" / "wang")
    missing = [n for sp in wang.splits.values() for n in sp.file_name
               if not coco.image_path(out / "coco", n).is_file()]
    if missing:
        raise FileNotFoundError(f"{out / 'coco'}: {len(missing)} images of Wang's splits missing, e.g. {missing[0]}")
    captions = coco.read_captions_source(out / "coco", cfg["coco"]["split_seed"], coco.GAMMAS,
                                         cfg["coco"]["gamma_seed"])
    count = lambda rec: {s: [sp.counts()["man"], sp.counts()["woman"]] for s, sp in rec.splits.items()}  # noqa: E731
    return {"wang": count(wang), "wang_gamma": {s: {g: len(ids) for g, ids in sub.items()}
                                                 for s, sub in wang.subsets.items()},
            "captions": count(captions)}


def read_weights(out: Path, cfg: dict, mode: str) -> dict:
    import torchvision

    from debias.data.pretrained import read_state_dict

    state = read_state_dict(out / WEIGHTS_DIR / weights_file(out))
    torchvision.models.resnet50(weights=None).load_state_dict(state)  # strict: every key and shape
    return {"file": weights_file(out), "tensors": len(state)}


READERS = {"mnist": read_mnist_counts, "fairface": read_fairface_counts, "waterbirds": read_waterbirds_counts,
           "coco": read_coco_counts, "weights": read_weights}


# -- command line ---------------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", type=Path, help="folder to write into (one subfolder per dataset)")
    p.add_argument("--counts", choices=real_counts.MODES, default="small",
                   help="small (default): the real counts divided per dataset (real_counts.py), for the rehearsal "
                        "tests; full: the real counts, e.g. to measure the prepare rules' memory")
    p.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS), metavar="NAME",
                   help=f"which to write (default: all of {', '.join(DATASETS)})")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                   help="processes encoding and writing the JPEGs (default: one per CPU; the files do not depend on it)")
    p.add_argument("--image-size", type=int, default=40, metavar="PX",
                   help="side of the FairFace, Waterbirds and COCO images in pixels (default 40)")
    p.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml",
                   help="the config whose layout to write (image folder of the FairFace padding, Waterbirds release "
                        "folder of waterbirds.source); default config/config.yaml")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    if args.workers < 1:
        raise SystemExit(f"--workers {args.workers}: expected 1 or more")
    if args.image_size < 16:
        raise SystemExit(f"--image-size {args.image_size}: expected 16 pixels or more (the digits are pasted in)")
    if not args.config.is_file():
        raise SystemExit(f"--config {args.config}: no such file")
    for name in args.datasets:
        folder = args.out_dir / FOLDERS[name]
        if folder.exists() and any(folder.iterdir()):
            raise SystemExit(f"{folder}: already has files; expected a new or empty folder for the {name} stand-in "
                             "(files of an earlier run would stay beside the new ones): remove it or choose another "
                             "OUT_DIR")


def main(argv=None) -> dict:
    args = parse_args(argv)
    check_args(args)
    cfg = yaml.safe_load(args.config.read_text())
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    summary = {"counts": args.counts, "image_size": args.image_size, "workers": args.workers, "datasets": {}}
    with JpegWriter(args.workers) as jpegs:
        for name in args.datasets:
            t0 = time.monotonic()
            written = WRITERS[name](out, args.counts, cfg, args.image_size, jpegs)
            t1 = time.monotonic()
            summary["datasets"][name] = {"written": written, "write_s": round(t1 - t0, 1),
                                         "read_back": READERS[name](out, cfg, args.counts),
                                         "read_s": round(time.monotonic() - t1, 1),
                                         "bytes": folder_bytes(out / FOLDERS[name])}
            print(f"{name}: written in {t1 - t0:.1f} s, read back in {time.monotonic() - t1:.1f} s, "
                  f"{summary['datasets'][name]['bytes'] / 1e6:.1f} MB", flush=True)
    (out / "roots.yaml").write_text("# written by tools/rehearsal/make_standins.py: the full config's data roots "
                                    "pointed at the stand-ins\n" + yaml.safe_dump(roots(out), sort_keys=True))
    (out / "standins.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
