"""MNIST in torchvision's raw IDX layout (``<root>/MNIST/raw/*-ubyte``), read by torchvision's reader.

Downloading is a separate, explicit step (``download_mnist``) that the pipeline runs only when the config
allows it; reading never downloads.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from debias.errors import MissingData

if TYPE_CHECKING:  # torch is not imported here: the workflow imports this module while it builds the DAG
    import torch

RAW_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def raw_dir(root: str | Path) -> Path:
    return Path(root) / "MNIST" / "raw"


def raw_paths(root: str | Path) -> list[Path]:
    return [raw_dir(root) / name for name in RAW_FILES.values()]


def missing_files(root: str | Path) -> list[Path]:
    return [p for p in raw_paths(root) if not p.is_file()]


def read_mnist(root: str | Path, key: str = "mnist.root") -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Read MNIST from ``root`` with torchvision's reader: {'train': (x uint8 [N,28,28], y int64), 'test': ...}."""
    from torchvision.datasets import MNIST

    missing = missing_files(root)
    if missing:
        raise MissingData(
            f"MNIST not found under {root!r} (config key {key}): missing {', '.join(map(str, missing))}. "
            "Expected torchvision's raw IDX layout <root>/MNIST/raw/*-ubyte; set allow_download: true "
            "to fetch it, or point the key at a folder that has it."
        )
    out = {}
    for split, train in (("train", True), ("test", False)):
        ds = MNIST(str(root), train=train, download=False)
        out[split] = (ds.data.clone(), ds.targets.clone().long())
    return out


def download_mnist(root: str | Path, mirrors: list[str]) -> None:
    """Fetch the four gzipped IDX files from the first mirror that answers, check their md5, unpack them.

    ``mirrors`` are base URLs (each ending in '/'); file names and md5 sums are torchvision's. Downloads are
    resumable (``debias.data.download``); each file is unpacked to a temporary name and renamed when complete.
    """
    import gzip
    import shutil

    from torchvision.datasets import MNIST

    from debias.data.download import download_file
    from debias.io import atomic_path

    raw = raw_dir(root)
    raw.mkdir(parents=True, exist_ok=True)
    for filename, md5 in MNIST.resources:
        target = raw / filename.removesuffix(".gz")
        if target.is_file():
            continue
        archive = download_file([mirror + filename for mirror in mirrors], raw / filename, md5=md5)
        with gzip.open(archive, "rb") as src, atomic_path(target) as tmp, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        archive.unlink()
