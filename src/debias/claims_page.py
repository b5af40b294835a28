"""The claims page (results/<scale>/tables/claims.md): verdicts per paper, each claim's value and interval, and
every table's cells against the paper."""

from __future__ import annotations

import math

import pandas as pd

from debias.claims_stats import VERDICTS
from debias.claims_tables import TABLES
from debias.tables import fixed, paper_value

DIGITS = {"fraction": 3, "percent": 2, "count": 0}
DIRECTION_WORDS = {">": "> 0", "<": "< 0", "=": "≈ paper"}

INTRO = (
    "Each claim of config/claims.yaml is a quantity over this run's tables. *measured* is its value, with a 95 % "
    "Student-t interval over the replicates (seeds; COCO leakage: attacker rounds × seeds), paired by seed where "
    "the runs give per-seed values for the same seeds, Welch otherwise (the *interval* column of claims.csv says "
    "which). Verdicts: **holds** — the interval excludes 0 on the paper's side and reaches the paper's value ± "
    "tolerance (or the paper prints none); **holds, smaller / larger** — on the paper's side, but wholly below / "
    "above that band; **does not hold** — the interval excludes 0 on the other side, or includes 0 but misses the "
    "band; **inconclusive** — it includes 0 and the band, or there are fewer than 2 replicates; **not run** — the "
    "run lacks the table, column or cells. For ≈ claims: holds inside the band, does not hold outside it.")


def number(x: float, unit: str, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return fixed(float(x), DIGITS[unit], sign=sign)


def summary(claims: pd.DataFrame, papers: dict[str, str]) -> pd.DataFrame:
    """Claims per paper and verdict."""
    rows = []
    for pid in sorted(papers):
        d = claims[claims.paper == pid]
        rows.append({"paper": f"{pid} {papers[pid]}", "claims": len(d),
                     **{v: int((d.verdict == v).sum()) for v in VERDICTS}})
    return pd.DataFrame(rows)


def _md_table(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(str(v).replace("|", "/") for v in r) + " |" for r in frame.itertuples(index=False)]
    return "\n".join(lines)


def claim_rows(d: pd.DataFrame) -> pd.DataFrame:
    out = []
    for r in d.itertuples(index=False):
        unit = TABLES[r.table].unit
        ci = ("" if math.isnan(r.ci_low) else f" [{number(r.ci_low, unit, True)}, {number(r.ci_high, unit, True)}]")
        paper = "–" if r.paper_value is None or pd.isna(r.paper_value) else paper_value(float(r.paper_value),
                                                                                          DIGITS[unit])
        out.append({"claim": f"`{r.claim}`", "the paper says": f"{r.statement} ({DIRECTION_WORDS[r.direction]})",
                    "measured [95 % interval]": number(r.measured, unit, True) + ci,
                    "n": "–" if pd.isna(r.n) else int(r.n), "paper": paper,
                    "± same size": number(r.tolerance, unit), "verdict": f"**{r.verdict}**"})
    return pd.DataFrame(out)


def render(claims: pd.DataFrame, cells: pd.DataFrame, papers: dict[str, str], scale: str) -> str:
    parts = [f"# Which claims reproduce ({scale} scale)", "", INTRO, "", _md_table(summary(claims, papers)), ""]
    for pid in sorted(papers):
        d = claims[claims.paper == pid]
        if d.empty:
            continue
        parts += [f"## {pid} {papers[pid]}", "", _md_table(claim_rows(d)), ""]
        notes = [f"- `{r.claim}`: " + "; ".join(x for x in (r.note, r.interval and f"interval: {r.interval}") if x)
                 for r in d.itertuples(index=False) if r.note or r.interval]
        parts += notes + ([""] if notes else [])
    parts += ["## Every cell against the paper", "",
              "Each reproduced cell (one measure of one table row) against the paper's value of it: within the "
              "paper's ± (or the stated points where the paper prints none), outside it, or not comparable (the "
              "paper prints no value for it, or the table's reference is not the paper's). The last column says "
              "whether the table itself counts its values as comparable with the paper at this scale.", ""]
    c = cells.rename(columns={"within": "within ±", "outside": "outside ±", "not_comparable": "not comparable",
                              "comparable_here": "comparable at this scale"})
    parts += [_md_table(c), ""]
    return "\n".join(parts)
