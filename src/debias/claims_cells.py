"""Every cell of every table against the paper: how many are within the paper's ±, how many outside.

A cell is one measure of one table row that this run reproduced (its mean is there). It is *within* when
|ours − paper| is at most the paper's printed ± for that cell (COCO Table 3; config/claims.yaml,
``cells.printed_spread``), else ``cells.tolerance_points`` points of the table's unit (counts: that many per cent
of the paper's value); *outside* otherwise; *not comparable* where the paper prints no value for it, or the
table's reference value is not the paper's (the L2RW MNIST grid). Whether the comparison means anything at this
scale the table itself says (its ``scale`` and ``paper_comparable`` columns): the last column.
"""

from __future__ import annotations

import math
import pandas as pd

from debias.claims_spec import ClaimsSpec
from debias.claims_tables import TABLES, Layout, load, paths

COLUMNS = ["table", "paper", "cells", "within", "outside", "not_comparable", "tolerance", "comparable_here"]


def tolerance(layout: Layout, table: str, row: pd.Series, measure: str, paper: float, spec: ClaimsSpec) -> float:
    """The paper's printed ± of the cell, else the default points (counts: per cent of the paper's value)."""
    key = "/".join(str(row[k]) for k in layout.keys)
    printed = spec.printed_spread.get(table, {}).get(key, {}).get(measure)
    if printed is not None:
        return float(printed)
    points = layout.points if layout.points is not None else abs(paper) / 100.0
    return spec.cell_tolerance_points * points


def comparable_here(frame: pd.DataFrame) -> str:
    """'yes', or 'no (why)': what the table says of its own comparability with the paper."""
    scales = set(frame["scale"].astype(str)) if "scale" in frame else set()
    if scales and scales != {"full"}:
        return f"no ({', '.join(sorted(scales))} scale)"
    if "paper_comparable" in frame and not frame["paper_comparable"].astype(bool).all():
        return "no (the table says so: paper_comparable false; see its caption)"
    return "yes"


def count(table: str, frame: pd.DataFrame, spec: ClaimsSpec) -> dict:
    layout = TABLES[table]
    within = outside = other = 0
    printed = False
    for _, row in frame.iterrows():
        for name, m in layout.measures.items():
            if m.mean not in row or pd.isna(row[m.mean]):
                continue
            paper = row[m.paper] if m.paper and m.paper in row else math.nan
            if layout.paper_is_reference or pd.isna(paper):
                other += 1
                continue
            tol = tolerance(layout, table, row, name, float(paper), spec)
            printed |= "/".join(str(row[k]) for k in layout.keys) in spec.printed_spread.get(table, {})
            if abs(float(row[m.mean]) - float(paper)) <= tol + 1e-9:
                within += 1
            else:
                outside += 1
    pts = spec.cell_tolerance_points
    tol_text = {"fraction": f"{pts:g} points ({pts * 0.01:g})", "percent": f"{pts:g} points",
                "count": f"{pts:g} % of the paper's count"}[layout.unit]
    if printed:
        tol_text = f"the paper's ± where printed, else {tol_text}"
    return {"table": table, "paper": layout.paper, "cells": within + outside + other, "within": within,
            "outside": outside, "not_comparable": other, "tolerance": tol_text,
            "comparable_here": comparable_here(frame)}


def compare(spec: ClaimsSpec, tables) -> pd.DataFrame:
    """One line per table of this run (``tables``: its folder or its tidy CSVs): its cells within the paper's ±,
    outside it, and not comparable."""
    lines, files = [], paths(tables)
    for table in TABLES:
        frame = load(files, table)
        if frame is not None:
            lines.append(count(table, frame, spec))
    return pd.DataFrame(lines, columns=COLUMNS)
