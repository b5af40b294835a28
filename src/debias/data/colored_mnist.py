"""Colored MNIST (Learning Not to Learn): generator, the authors' pre-built files, and the bias targets.

Generator (protocol sheet C1, "regenerate"): the digit stroke is coloured, the background stays black.
Each training image gets a colour c ~ N(mean[label], sigma2 * I) clipped to [0, 1]; each test image gets a
colour around a mean drawn uniformly from the ten means, independently of its label. Pixel = grey * c.

A prepared file (``torch.save``) holds uint8 images [N, 3, 28, 28], int64 labels and the index of the mean
colour each image was drawn around (``color``; -1 where unknown, as for the authors' files).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from debias.data.layout import colored_mnist_authors_file as authors_file, sigma2_tag  # noqa: F401 (re-exported)
from debias.errors import DataFormatError, MissingData

SIGMA2_GRID = (0.020, 0.025, 0.030, 0.035, 0.040, 0.045, 0.050)
N_BINS = 8
IGNORE = 255
COLORIZE_CHUNK = 1024  # images coloured at once: a float64 buffer of 1024 x 3 x 28 x 28 (19 MB)


def sample_colors(
    labels: torch.Tensor, means: torch.Tensor, sigma2: float, label_dependent: bool, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image colours [N, 3] in [0, 1] and the index of the mean each was drawn around."""
    n = labels.shape[0]
    if label_dependent:
        idx = labels.long().clone()
    else:
        idx = torch.randint(0, means.shape[0], (n,), generator=gen)
    noise = torch.randn(n, 3, generator=gen, dtype=torch.float64) * sigma2**0.5
    return (means.double()[idx] + noise).clamp(0.0, 1.0), idx


def colorize(gray: torch.Tensor, colors: torch.Tensor, chunk: int = COLORIZE_CHUNK) -> torch.Tensor:
    """Grey digits uint8 [N, H, W] times per-image colours [N, 3] -> uint8 [N, 3, H, W]; black stays black.

    Pixel = round(grey * colour) in float64, ``chunk`` images at a time in one reused float64 buffer, into one
    preallocated uint8 output: the float64 product of the whole set (1.1 GB for MNIST's 60,000 images, and its
    temporaries) never exists.
    """
    n = gray.shape[0]
    if colors.shape != (n, 3):
        raise ValueError(f"colorize: expected one RGB colour per image, {n} x 3; got {tuple(colors.shape)}")
    out = torch.empty((n, 3, *gray.shape[1:]), dtype=torch.uint8)
    colors = colors.double()
    buf = torch.empty((min(chunk, n), 3, *gray.shape[1:]), dtype=torch.float64)
    for start in range(0, n, chunk):
        part = slice(start, start + chunk)
        x = buf[: out[part].shape[0]]
        torch.mul(gray[part].unsqueeze(1), colors[part, :, None, None], out=x)  # grey promoted to float64
        out[part] = x.round_().clamp_(0, 255)  # the cast to uint8 of an integral value in [0, 255]: exact
    return out


def generate(
    mnist: dict[str, tuple[torch.Tensor, torch.Tensor]], means: list[list[float]], sigma2: float, seed: int
) -> dict[str, torch.Tensor]:
    """Colour MNIST ``{'train': (x, y), 'test': (x, y)}`` deterministically from ``seed``."""
    means_t = torch.tensor(means, dtype=torch.float64)
    if means_t.shape != (10, 3) or means_t.min() < 0 or means_t.max() > 1:
        raise ValueError(f"colored_mnist.colors: expected 10 RGB triples in [0, 1], got {means}")
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for split, label_dependent in (("train", True), ("test", False)):
        gray, y = mnist[split]
        colors, idx = sample_colors(y, means_t, sigma2, label_dependent, gen)
        out[f"{split}_x"] = colorize(gray, colors)
        out[f"{split}_y"] = y.long()
        out[f"{split}_color"] = idx.long()
    return out


def load_authors_npy(directory: str | Path, sigma2: float) -> dict[str, torch.Tensor]:
    """Read the authors' pickled ``mnist_10color_jitter_var_{sigma2}.npy`` into the prepared-file layout."""
    path = authors_file(directory, sigma2)
    if not path.is_file():
        raise MissingData(
            f"{path}: the authors' colored-MNIST file for sigma2={sigma2_tag(sigma2)} is missing "
            "(config key colored_mnist.authors_dir; the files come from the link in the authors' "
            "dataset/colored_mnist/README.md)"
        )
    data = np.load(path, allow_pickle=True, encoding="latin1").item()
    out = {}
    for split in ("train", "test"):
        for key in (f"{split}_image", f"{split}_label"):
            if key not in data:
                raise DataFormatError(f"{path}: key {key!r} missing; found {sorted(data)}")
        x = np.asarray(data[f"{split}_image"])
        if x.ndim != 4 or x.shape[1:] != (28, 28, 3) or x.dtype != np.uint8:
            raise DataFormatError(f"{path}: {split}_image should be uint8 [N, 28, 28, 3], got {x.dtype} {x.shape}")
        out[f"{split}_x"] = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
        out[f"{split}_y"] = torch.from_numpy(np.asarray(data[f"{split}_label"]).astype(np.int64)).reshape(-1)
        out[f"{split}_color"] = torch.full((x.shape[0],), -1, dtype=torch.long)
    return out


def color_bin_targets(x: torch.Tensor) -> torch.Tensor:
    """The reference bias target: 14x14 nearest-neighbour map, per channel bin = value // 32, black -> 255.

    PIL's nearest-neighbour resize 28 -> 14 samples pixel centres, i.e. rows and columns 1, 3, ..., 27.
    """
    sub = x[:, :, 1::2, 1::2]
    bins = torch.div(sub, 256 // N_BINS, rounding_mode="floor")
    return torch.where(sub == 0, torch.full_like(bins, IGNORE), bins)


def training_splits(prepared: dict[str, torch.Tensor], device: torch.device) -> dict[str, dict[str, torch.Tensor]]:
    """Prepared file -> {'train': batch fields, 'test': batch fields}, whole on ``device``.

    Fields: ``x`` (uint8 images), ``y``, ``bias`` (colour-bin targets, train only), ``group``
    (1 where the image's colour is its own class's colour, 0 where not, -1 where unknown).
    """
    splits = {}
    for split in ("train", "test"):
        x, y, color = prepared[f"{split}_x"], prepared[f"{split}_y"], prepared[f"{split}_color"]
        fields = {"x": x, "y": y, "group": torch.where(color < 0, -1, (color == y).long())}
        if split == "train":
            fields["bias"] = color_bin_targets(x)
        splits[split] = {k: v.to(device) for k, v in fields.items()}
    return splits
