"""The real datasets' counts, per split and group, and the rehearsal's small counts derived from them.

Small counts divide every group's real count by the dataset's ``SMALL_DIVISOR`` (rounded, at least 1 per group), so
the relative group proportions stay the real ones. The divisors are the largest the full config (config/config.yaml)
allows, or small enough for ResNet-50 on a CPU:
- MNIST 1 (real counts): the L2RW grid's share 0.995 of a 5,000-image budget needs 4,975 nines; MNIST has 5,949.
- FairFace 4: share 0.99 of its 3,600-image budget needs 3,564 White training images (16,527 / 4 = 4,132), and
  its test set 180 per class from the val split (2,085 / 4 = 521 White).
- Waterbirds 400, COCO 500: every image passes through ResNet-50 at 224 px (config ``image``), about 0.25 s a
  forward pass on one CPU core; 34 and 67 images keep a training job within a minute. At these divisors the
  smallest groups (Waterbirds' minority groups, its val groups) are the minimum of 1 image, so over-represented.
"""

from __future__ import annotations

from debias.data.coco_download import WANG_TRAIN_COUNTS
from debias.data.waterbirds import PUBLISHED_COUNTS

# torchvision's MNIST: images per digit 0-9 (train 60,000, t10k 10,000)
MNIST = {"train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
         "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]}
# FairFace 1.0 label files: images per race (train 86,744, val 10,954)
FAIRFACE = {
    "train": {"White": 16527, "Latino_Hispanic": 13367, "Indian": 12319, "East Asian": 12287, "Black": 12233,
              "Southeast Asian": 10795, "Middle Eastern": 9216},
    "val": {"White": 2085, "Latino_Hispanic": 1623, "Black": 1556, "East Asian": 1550, "Indian": 1516,
            "Southeast Asian": 1415, "Middle Eastern": 1209},
}
# Waterbirds: [landbird/land, landbird/water, waterbird/land, waterbird/water] per split (11,788 images)
WATERBIRDS = {split: list(groups) for split, groups in PUBLISHED_COUNTS.items()}
# Wang et al.'s COCO gender splits: [men, women] (train from COCO train2014, val and test halves of val2014)
COCO = {"train": [WANG_TRAIN_COUNTS["man"], WANG_TRAIN_COUNTS["woman"]], "val": [3813, 1554], "test": [3894, 1579]}

REAL = {"mnist": MNIST, "fairface": FAIRFACE, "waterbirds": WATERBIRDS, "coco": COCO}
SMALL_DIVISOR = {"mnist": 1, "fairface": 4, "waterbirds": 400, "coco": 500}
MODES = ("small", "full")


def scaled(counts, divisor: int):
    """``counts`` (nested dicts / lists of ints) with every count divided by ``divisor``, rounded, at least 1."""
    if isinstance(counts, dict):
        return {k: scaled(v, divisor) for k, v in counts.items()}
    if isinstance(counts, list):
        return [scaled(v, divisor) for v in counts]
    return max(1, round(counts / divisor))


def counts(dataset: str, mode: str):
    """The counts of ``dataset`` ('mnist', 'fairface', 'waterbirds', 'coco') in ``mode`` ('small' or 'full')."""
    if dataset not in REAL:
        raise ValueError(f"dataset {dataset!r}: expected one of {', '.join(REAL)}")
    if mode not in MODES:
        raise ValueError(f"--counts {mode!r}: expected one of {', '.join(MODES)}")
    return scaled(REAL[dataset], 1 if mode == "full" else SMALL_DIVISOR[dataset])


def total(counts_) -> int:
    """The number of images in ``counts`` (nested dicts / lists of ints)."""
    if isinstance(counts_, dict):
        return sum(total(v) for v in counts_.values())
    if isinstance(counts_, list):
        return sum(total(v) for v in counts_)
    return int(counts_)
