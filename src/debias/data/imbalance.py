"""Class-imbalanced binary splits (the learning-to-reweight protocol).

Label 1 is the majority class with share ``p`` of the training budget ``n_train``; a clean, balanced validation
set of ``n_val_per_class`` images per class is carved out of the budget (``val_from_budget``, the official
arithmetic: 5 + 5 out of 5,000 leave 4,990) or drawn from the rest of the pool; the test set is balanced.
Counts are asserted after building: a pool too small for a share is an error, never a silent truncation.
"""

from __future__ import annotations

import math

import numpy as np


def official_seed(k: int) -> int:
    """The reference code's data seed of run k: (k * 123456789) mod 100000."""
    return (k * 123456789) % 100000


def class_budget(n_train: int, share: float) -> tuple[int, int]:
    """(minority, majority) counts of the training budget; round-safe (0.9 * 5000 is 4500, not 4499)."""
    major = math.floor(n_train * share + 1e-9)
    return n_train - major, major


def imbalanced_split(train_labels: np.ndarray, test_labels: np.ndarray, share: float, n_train: int,
                     n_val_per_class: int, n_test_per_class: int, val_from_budget: bool, seed: int) -> dict:
    """Indices into the train pool ('train', 'val') and the test pool ('test') for one share and seed."""
    rng = np.random.RandomState(seed)
    budget = class_budget(n_train, share)
    out = {"train": [], "val": [], "test": []}
    for label, n_budget in enumerate(budget):
        pool = rng.permutation(np.flatnonzero(train_labels == label))
        n_fit = n_budget - n_val_per_class if val_from_budget else n_budget
        need = n_fit + n_val_per_class
        if n_fit < 1 or len(pool) < need:
            raise ValueError(
                f"share {share}: class {label} needs {n_fit} training + {n_val_per_class} validation images "
                f"(budget {n_train}), the pool has {len(pool)}"
            )
        out["val"].append(pool[:n_val_per_class])
        out["train"].append(pool[n_val_per_class:need])
        test_pool = rng.permutation(np.flatnonzero(test_labels == label))
        if len(test_pool) < n_test_per_class:
            raise ValueError(f"class {label}: {n_test_per_class} test images wanted, the test pool has {len(test_pool)}")
        out["test"].append(test_pool[:n_test_per_class])
    split = {k: np.sort(np.concatenate(v)) for k, v in out.items()}
    check_counts(split, train_labels, test_labels, share, n_train, n_val_per_class, n_test_per_class, val_from_budget)
    return split


def check_counts(split, train_labels, test_labels, share, n_train, n_val_per_class, n_test_per_class,
                 val_from_budget) -> None:
    """Assert the class counts of a built split (pitfall P3: no silent truncation)."""
    minor, major = class_budget(n_train, share)
    off = n_val_per_class if val_from_budget else 0
    counts = {
        "train": np.bincount(train_labels[split["train"]], minlength=2).tolist(),
        "val": np.bincount(train_labels[split["val"]], minlength=2).tolist(),
        "test": np.bincount(test_labels[split["test"]], minlength=2).tolist(),
    }
    expected = {"train": [minor - off, major - off], "val": [n_val_per_class] * 2, "test": [n_test_per_class] * 2}
    if counts != expected:
        raise AssertionError(f"share {share}: class counts {counts}, expected {expected}")
    if np.intersect1d(split["train"], split["val"]).size:
        raise AssertionError(f"share {share}: validation images are also in the training set")
