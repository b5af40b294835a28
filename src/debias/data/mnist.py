"""MNIST in torchvision's raw IDX layout (``<root>/MNIST/raw/*-ubyte``), read by torchvision's reader.

Downloading is a separate, explicit step (``download_mnist``) that the pipeline runs only when the config
allows it; reading never downloads.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from debias.errors import DataFormatError, MissingData

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
    for path in raw_paths(root):
        check_idx_size(path, key)
    out = {}
    for split, train in (("train", True), ("test", False)):
        ds = MNIST(str(root), train=train, download=False)
        out[split] = (ds.data.clone(), ds.targets.clone().long())
    return out


IDX_ITEM_BYTES = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}  # the IDX format's element types


def check_idx_size(path: Path, key: str = "mnist.root") -> None:
    """Refuse an IDX file whose size is not what its header says (a truncated download or copy), naming the file,
    both sizes and the fix; torchvision's reader would fail with a bare reshape error."""
    import math
    import struct

    raw = path.read_bytes()[:4 + 4 * 4]
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in IDX_ITEM_BYTES or len(raw) < 4 + 4 * raw[3]:
        raise DataFormatError(f"{path}: not an IDX file (its first bytes are {raw[:4].hex()}, expected 0000 then "
                              f"the element type and the number of dimensions); replace it with the MNIST file "
                              f"(config key {key})")
    dims = struct.unpack(f">{raw[3]}I", raw[4:4 + 4 * raw[3]])
    expected = 4 + 4 * len(dims) + IDX_ITEM_BYTES[raw[2]] * math.prod(dims)
    found = path.stat().st_size
    if found != expected:
        raise DataFormatError(f"{path}: {found:,} bytes, but its header ({' x '.join(map(str, dims))}) says "
                              f"{expected:,}: the file is truncated or damaged; delete it and rerun with "
                              f"allow_download: true, or copy it again (config key {key})")


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
