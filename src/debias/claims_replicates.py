"""Per-seed values of a table's cells, read from the runs' metrics.json with the experiment's own reader.

The tidy tables hold mean, std and n over seeds; a difference of two cells trained with the same seeds is better
measured seed by seed (paired: on FairFace a seed draws the training split every method of that seed trains
on). ``read(table, files)`` returns one line per (cell, seed) with the table's key columns, ``seed`` and the
measures under the names ``debias.claims_tables`` gives them; tables whose replicates are not seeds (COCO
leakage: attacker rounds) have no reader here.
"""

from __future__ import annotations

from typing import Callable


def _colored_mnist(files: list[str]):
    from debias.experiments.colored_mnist import collect

    return collect(files).rename(columns={"test_acc": "acc", "test_acc_bias_conflicting": "acc_bias_conflicting"})


def _fairface(files: list[str]):
    from debias.experiments.reweighting import collect

    return collect(files, "fairface")


def _l2rw_mnist(files: list[str]):
    from debias.experiments.reweighting import collect

    runs = collect(files, "l2rw_mnist")
    return runs[runs.split == "test"].assign(err=lambda d: 1.0 - d.acc)


def _waterbirds(files: list[str]):
    from debias.experiments.waterbirds import METRICS, collect

    runs = collect(files)
    return runs.melt(id_vars=["method", "epsilon_percentile", "selection", "seed"], value_vars=list(METRICS),
                     var_name="column", value_name="acc")


def _coco_map(files: list[str]):
    from debias.experiments.coco_tables import collect_map

    return collect_map(files).rename(columns={"test_map": "map"})


READERS: dict[str, Callable] = {"colored_mnist": _colored_mnist, "fairface_reweighting": _fairface,
                                "l2rw_mnist": _l2rw_mnist, "waterbirds": _waterbirds, "coco_map": _coco_map}


def read(table: str, files: list[str]):
    """Per-seed lines of ``table`` from ``files`` (metrics.json), or None where there is no reader or no file."""
    from pathlib import Path

    present = [f for f in files if Path(f).is_file()]
    if table not in READERS or not present:
        return None
    return READERS[table](present)
