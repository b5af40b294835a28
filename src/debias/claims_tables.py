"""What config/claims.yaml may refer to: each tidy table's file, key columns and measures.

A claim's cell ``acc{method=lnl, sigma2=0.020}`` of table ``colored_mnist`` is the row of
``<results>/tables/colored_mnist.csv`` whose key columns have those values, and its measure ``acc``: the columns
``acc_mean``, ``acc_std`` and ``n_seeds`` (the replicate count), and ``paper`` (the paper's value of the cell).
The fixed value sets below are those of the code that writes the tables (``tests/test_claims.py`` checks them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

PAPERS = ("000", "001", "002", "003")
UNITS = {"fraction": 0.01, "percent": 1.0, "count": None}  # one point in the table's unit (count: 1 % of the value)


@dataclass(frozen=True)
class Measure:
    mean: str
    std: str | None
    n: str | None              # the column of the replicate count; None: the run supplies it (n_fill) or has none
    paper: str | None = None   # the column of the paper's value of the cell
    replicates: str = "seeds"  # what the replicates are


@dataclass(frozen=True)
class Layout:
    file: str
    paper: str                            # the paper whose results the table reproduces
    unit: str                             # a key of UNITS
    keys: tuple[str, ...]                 # the key columns a cell may select on
    measures: dict[str, Measure]
    method_keys: tuple[str, ...] = ()     # key columns whose values are methods (config rows)
    config_rows: tuple[str, ...] = ()     # where the config lists those rows
    values: dict[str, tuple] = field(default_factory=dict)  # key columns with a fixed set of values
    paper_is_reference: bool = False      # the `paper` column holds a third-party reference, not the paper's value

    @property
    def points(self) -> float | None:
        return UNITS[self.unit]


def _m(stem: str, paper: bool = False, n: str | None = "n_seeds", replicates: str = "seeds") -> Measure:
    return Measure(f"{stem}_mean", f"{stem}_std", n, "paper" if paper else None, replicates)


COCO_SPLITS = ("none", "gamma1", "gamma2", "gamma3")  # debias.experiments.coco.SPLIT_NAMES
WATERBIRDS_COLUMNS = ("Avg (train-weighted)", "Accuracy", "Worst")  # debias.experiments.waterbirds.METRICS
SELECTION_RULES = ("last", "val_average", "val_worst_group", "val_macro_f1")  # debias.engine.SELECTION_RULES

TABLES: dict[str, Layout] = {
    "colored_mnist": Layout(
        "colored_mnist.csv", "003", "fraction", ("method", "sigma2"),
        {"acc": _m("acc", paper=True), "acc_bias_conflicting": _m("acc_bias_conflicting")},
        method_keys=("method",), config_rows=("colored_mnist", "methods")),
    "fairface_reweighting": Layout(
        "fairface_reweighting.csv", "001", "fraction", ("share", "method", "split"),
        {m: _m(m) for m in ("acc", "balanced_acc", "acc_poc", "acc_white")},
        method_keys=("method",), config_rows=("reweighting", "methods"), values={"split": ("train", "test")}),
    "l2rw_mnist": Layout(
        "l2rw_mnist.csv", "001", "fraction", ("method", "share"), {"err": _m("err", paper=True)},
        method_keys=("method",), config_rows=("reweighting", "methods"), paper_is_reference=True),
    "waterbirds": Layout(
        "waterbirds.csv", "002", "percent", ("method", "epsilon_percentile", "selection", "column"),
        {"acc": Measure("mean", "std", "n_seeds", "paper")},
        method_keys=("method",), config_rows=("waterbirds", "methods"),
        values={"selection": SELECTION_RULES, "column": WATERBIRDS_COLUMNS}),
    "coco_map": Layout(
        "coco_map.csv", "000", "percent", ("augmentation", "lr"), {"map": _m("map", paper=True)},
        method_keys=("augmentation",), config_rows=("coco", "augmentations")),
    "coco_leakage": Layout(
        "coco_leakage.csv", "000", "percent", ("attacker", "pairing", "split"),
        {"dataset": Measure("dataset_mean", "dataset_std", None, "dataset_paper", "attacker rounds"),
         **{a: Measure(f"{a}_mean", f"{a}_std", f"{a}_n", f"{a}_paper", "attacker rounds × seeds")
            for a in ("nomix", "mixup", "cutmix")},
         "min_delta": Measure("min_delta", None, None, "min_delta_paper", "none")},
        values={"attacker": ("unbalanced", "balanced"), "pairing": ("random", "balanced"), "split": COCO_SPLITS}),
    "coco_splits": Layout(
        "coco_splits.csv", "000", "count", ("attacker_balanced", "split", "gender"),
        {"images": Measure("images", None, None, "paper", "none")}, values={"gender": ("man", "woman")}),
}


def same_value(a, b) -> bool:
    """A table's key value equals a claim's: numbers to 1e-9 relative, anything else as text."""
    fa, fb = _number(a), _number(b)
    if fa is not None and fb is not None:
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        return math.isclose(fa, fb, rel_tol=1e-9, abs_tol=1e-12)
    return str(a) == str(b)


def _number(x) -> float | None:
    if isinstance(x, bool):
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def paths(tables) -> dict[str, Path]:
    """Table name -> CSV of this run: ``tables`` is the run's tables folder, or the list of its tidy CSVs (the
    claims rule's inputs: a table the run does not build is left out even where an old file lies in the folder)."""
    files = [Path(tables) / t.file for t in TABLES.values()] if isinstance(tables, (str, Path)) else map(Path, tables)
    by_file = {t.file: name for name, t in TABLES.items()}
    return {by_file[f.name]: f for f in files if f.name in by_file and f.is_file()}


def load(tables: dict[str, Path], name: str):
    """The tidy CSV of table ``name`` (``tables`` from ``paths``), or None when this run did not write it."""
    import pandas as pd

    return pd.read_csv(tables[name]) if name in tables else None
