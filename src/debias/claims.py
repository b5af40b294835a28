"""Which of the papers' claims reproduce: each claim of config/claims.yaml measured on a run's tables.

``measure(spec, tables, runs)`` evaluates every claim's quantity on the tidy tables in ``tables`` (per-seed values
from the runs' metrics.json where given), its 95 % interval (``debias.claims_stats``) and its verdict; ``write``
makes the claims table (CSV), the claims page (Markdown, with every table's cells against the paper:
``debias.claims_cells``) and the figure. A claim whose table, column or cells this run does not have is
``not run``, and says which; nothing else fails for it.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pandas as pd

from debias import claims_expr as ex
from debias import claims_stats as st
from debias.claims_spec import CLAIMS_FILE, Claim, ClaimsError, ClaimsSpec
from debias.claims_tables import TABLES, Layout, load, paths, same_value

COLUMNS = ["claim", "paper", "paper_title", "statement", "table", "quantity", "direction", "measured", "ci_low",
           "ci_high", "n", "interval", "paper_value", "tolerance", "verdict", "note"]


class MissingCell(Exception):
    """A cell the quantity needs is not in this run's table."""


class _Evaluation:
    """One claim's quantity on one table: a ``Linear`` over the cells it reads (``self.cells``)."""

    def __init__(self, claim: Claim, frame: pd.DataFrame, layout: Layout, seeds: pd.DataFrame | None,
                 n_fill: dict[str, int]):
        self.claim, self.frame, self.layout, self.seeds, self.n_fill = claim, frame, layout, seeds, n_fill
        self.cells: dict = {}
        self.notes: list[str] = []

    def value(self, node: ex.Node, bound: dict) -> st.Linear:
        if isinstance(node, ex.Num):
            return st.Linear(node.value)
        if isinstance(node, ex.Cell):
            return self.cell(node, bound)
        if isinstance(node, ex.Neg):
            return self.value(node.arg, bound).scale(-1.0)
        if isinstance(node, ex.Bin):
            left, right = self.value(node.left, bound), self.value(node.right, bound)
            if node.op == "+":
                return left + right
            if node.op == "-":
                return left + right.scale(-1.0)
            if node.op == "*":
                return left.scale(right.const) if not right.terms else right.scale(left.const)
            return left.scale(1.0 / right.const)
        return self.aggregate(node, bound)

    def aggregate(self, node: ex.Agg, bound: dict) -> st.Linear:
        keys = sorted(ex.direct_multi_keys(node) - set(bound))
        domains = [self.domain(k, node) for k in keys]
        values, skipped = [], 0
        for combo in itertools.product(*domains):
            env = {**bound, **dict(zip(keys, combo))}
            for arg in node.args:
                try:
                    values.append((self.value(arg, env), combo))
                except MissingCell:
                    skipped += 1
        if not values:
            raise MissingCell(f"no cell of {node.func}(...) is in the table"
                              + (f" for any {', '.join(keys)}" if keys else ""))
        if keys:
            used = [[v for v in d if any(c[i] == v for _, c in values)] for i, d in enumerate(domains)]
            self.notes.append(f"{node.func} over " + ", ".join(f"{k} ∈ {{{', '.join(map(_fmt, u))}}}"
                                                               for k, u in zip(keys, used))
                              + (f" ({skipped} value(s) left out: a cell missing)" if skipped else ""))
        if node.func == "mean":
            total = st.Linear()
            for lin, _ in values:
                total = total + lin
            return total.scale(1.0 / len(values))
        points = [lin.point(self.cells) for lin, _ in values]
        pick = points.index(min(points) if node.func == "min" else max(points))
        if len(values) > 1 and keys:
            self.notes.append(f"{node.func} at {', '.join(keys)} = {_fmt_combo(values[pick][1])}")
        return values[pick][0]

    def domain(self, key: str, node: ex.Agg) -> list:
        """The values of ``key`` the aggregate ranges over: the table's, as far as every cell's selector allows."""
        if key not in self.frame.columns:
            raise MissingCell(f"no column {key!r} in {self.layout.file}")
        present = [v for v in dict.fromkeys(self.frame[key]) if not (isinstance(v, float) and math.isnan(v))]
        for cell in ex.direct_cells(node):
            sel = dict(cell.selectors).get(key)
            if sel is None or sel == ex.ANY:
                continue
            absent = [s for s in sel if not any(same_value(v, s) for v in present)]
            if absent:
                self.notes.append(f"{key} {', '.join(map(_fmt, absent))} not in this run")
            present = [v for v in present if any(same_value(v, s) for s in sel)]
        return present

    def cell(self, node: ex.Cell, bound: dict) -> st.Linear:
        mask, used = pd.Series(True, index=self.frame.index), []
        for key, sel in node.selectors:
            if key not in self.frame.columns:
                raise MissingCell(f"no column {key!r} in {self.layout.file}")
            if key in bound:
                if sel != ex.ANY and not any(same_value(bound[key], s) for s in sel):
                    raise MissingCell(f"{key} = {bound[key]} is not among {node.text()}'s values")
                value = bound[key]
            else:
                value = sel[0]
            used.append(f"{key}={_fmt(value)}")
            mask &= self.frame[key].map(lambda v, value=value: same_value(v, value))
        rows = self.frame[mask]
        label = f"{node.measure}{{{', '.join(used)}}}"
        if rows.empty:
            raise MissingCell(f"no row {label} in {self.layout.file}")
        if len(rows) > 1:
            differ = [k for k in self.layout.keys if k in rows and rows[k].astype(str).nunique() > 1]
            raise ClaimsError(f"{CLAIMS_FILE}: claim {self.claim.id!r}, key quantity: {node.text()} matches "
                              f"{len(rows)} rows of {self.layout.file}; pin {', '.join(differ)}")
        row = rows.iloc[0]
        m = self.layout.measures[node.measure]
        if m.mean not in row or pd.isna(row[m.mean]):
            raise MissingCell(f"{label}: no value in {self.layout.file} (column {m.mean})")
        ident = (node.measure, tuple((k, str(row[k])) for k in self.layout.keys if k in row))
        if ident not in self.cells:
            std = float(row[m.std]) if m.std and m.std in row and not pd.isna(row[m.std]) else math.nan
            n = int(row[m.n]) if m.n and m.n in row and not pd.isna(row[m.n]) else self.n_fill.get(node.measure)
            self.cells[ident] = st.CellValue(label, float(row[m.mean]), std, n, m.replicates,
                                             self.per_seed(row, node.measure, n))
        return st.Linear(0.0, {ident: 1.0})

    def per_seed(self, row: pd.Series, measure: str, n: int | None) -> dict | None:
        """seed -> value of the cell from the runs, where they agree with the table (same n, same mean)."""
        if self.seeds is None or measure not in self.seeds:
            return None
        mask = pd.Series(True, index=self.seeds.index)
        for k in self.layout.keys:
            if k in self.seeds and k in row:
                mask &= self.seeds[k].map(lambda v, want=row[k]: same_value(v, want))
        d = self.seeds[mask]
        values = dict(zip(d["seed"], d[measure].astype(float)))
        mean = float(row[self.layout.measures[measure].mean])
        if len(values) != len(d) or len(values) != n or not math.isclose(
                sum(values.values()) / max(len(values), 1), mean, rel_tol=1e-5, abs_tol=1e-6):
            self.notes.append(f"the runs' metrics.json do not match {self.layout.file} for {measure}: not paired")
            return None
        return values


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _fmt_combo(combo: tuple) -> str:
    return ", ".join(_fmt(v) for v in combo)


def measure_one(claim: Claim, frame: pd.DataFrame | None, seeds: pd.DataFrame | None = None,
                n_fill: dict[str, int] | None = None, paper_title: str = "") -> dict:
    """One line of the claims table: the claim, its measured value, interval and verdict."""
    layout = TABLES[claim.table]
    out = {"claim": claim.id, "paper": claim.paper, "paper_title": paper_title, "statement": claim.statement,
           "table": claim.table, "quantity": claim.quantity, "direction": claim.direction, "measured": math.nan,
           "ci_low": math.nan, "ci_high": math.nan, "n": None, "interval": "", "paper_value": claim.paper_value,
           "tolerance": claim.tolerance, "verdict": "not run", "note": ""}
    if frame is None:
        out["note"] = f"not in this run: no table {layout.file}"
        return out
    ev = _Evaluation(claim, frame, layout, seeds, n_fill or {})
    try:
        q = ev.value(claim.expr, {})
    except MissingCell as err:
        out["note"] = f"not in this run: {err}"
        return out
    iv = st.interval(q, ev.cells)
    out.update(measured=iv.point, ci_low=iv.low, ci_high=iv.high, n=iv.n, interval=iv.method,
               verdict=st.verdict(claim.direction, iv.low, iv.high, claim.paper_value, claim.tolerance))
    out["note"] = "; ".join(x for x in dict.fromkeys([iv.note, *ev.notes, claim.note]) if x)
    return out


def measure(spec: ClaimsSpec, tables, runs: dict[str, list[str]] | None = None,
            n_fill: dict[str, dict[str, int]] | None = None) -> pd.DataFrame:
    """Every claim of ``spec`` on ``tables`` (the run's tables folder, or its list of tidy CSVs); ``runs``: table
    -> its runs' metrics.json (per-seed values, for paired intervals); ``n_fill``: table -> measure -> replicates
    where the table has no column for them."""
    from debias import claims_replicates

    files, frames, seeds, lines = paths(tables), {}, {}, []
    for claim in spec.claims:
        if claim.table not in frames:
            frames[claim.table] = load(files, claim.table)
            seeds[claim.table] = claims_replicates.read(claim.table, (runs or {}).get(claim.table, []))
        lines.append(measure_one(claim, frames[claim.table], seeds[claim.table], (n_fill or {}).get(claim.table),
                                 spec.papers.get(claim.paper, "")))
    out = pd.DataFrame(lines, columns=COLUMNS)
    out["n"] = out["n"].astype("Int64")
    return out


def write(spec: ClaimsSpec, tables, scale: str, out_csv: str, out_md: str, figures: list[str],
          runs: dict[str, list[str]] | None = None, n_fill: dict[str, dict[str, int]] | None = None) -> pd.DataFrame:
    """The claims table (CSV), the claims page (Markdown: the claims, then every cell against the paper) and the
    figure (every path of ``figures``)."""
    from debias import claims_cells, claims_figure, claims_page
    from debias.io import write_text
    from debias.tables import CSV_FLOAT_FORMAT

    claims = measure(spec, tables, runs, n_fill)
    write_text(out_csv, claims.assign(scale=scale).to_csv(index=False, float_format=CSV_FLOAT_FORMAT))
    write_text(out_md, claims_page.render(claims, claims_cells.compare(spec, tables), spec.papers, scale))
    claims_figure.figure(claims, scale, figures)
    return claims
