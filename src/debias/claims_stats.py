"""The 95 % interval of a claim's quantity and the verdict it gives.

A quantity is linear in the means of its cells (``debias.claims_expr``): q = c0 + sum_i c_i * mean_i. Its
interval is a Student-t interval:

- **paired by seed** when every cell has per-seed values for the same seeds (the runs' metrics.json): q is
  computed seed by seed and the interval is q̄ ± t(0.975, n-1) s/√n over those n values;
- **Welch** otherwise, from each cell's mean, std and n (the tidy table's columns): the standard error
  √(sum c_i² s_i²/n_i) with the Welch-Satterthwaite degrees of freedom; for one cell this is the plain t-interval.

Why t and not a bootstrap: with the 2-5 replicates a run has, the percentile bootstrap's interval can be no wider
than the range of the values (for 2 values it is [min, max], about a 50 % interval) and BCa is undefined; the t
interval widens with few replicates as it should (t(0.975, 1) = 12.7), and needs only mean, std and n, which
every table holds. It assumes roughly normal replicates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

LEVEL = 0.95
MIN_REPLICATES = 2
DIRECTIONS = (">", "<", "=")
VERDICTS = ("holds", "holds, smaller", "holds, larger", "does not hold", "inconclusive", "not run")


@dataclass(frozen=True)
class CellValue:
    label: str                 # the cell as the claim names it, with the row's key values
    mean: float
    std: float                 # NaN where the table has none
    n: int | None              # replicates (None: unknown)
    replicates: str            # what they are ("seeds", "attacker rounds")
    seeds: dict | None = None  # seed -> value, where the runs give them


@dataclass(frozen=True)
class Linear:
    const: float = 0.0
    terms: dict = field(default_factory=dict)  # cell id -> coefficient

    def __add__(self, other: "Linear") -> "Linear":
        terms = dict(self.terms)
        for k, c in other.terms.items():
            terms[k] = terms.get(k, 0.0) + c
        return Linear(self.const + other.const, terms)

    def scale(self, factor: float) -> "Linear":
        return Linear(self.const * factor, {k: c * factor for k, c in self.terms.items()})

    def point(self, cells: dict) -> float:
        return self.const + sum(c * cells[k].mean for k, c in self.terms.items())


@dataclass(frozen=True)
class Interval:
    point: float
    low: float
    high: float
    n: int | None       # replicates per cell (the smallest, for Welch)
    df: float
    method: str         # how it was formed, in words
    note: str = ""


def t_quantile(df: float, level: float = LEVEL) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, df))


def interval(q: Linear, cells: dict) -> Interval:
    """The t interval of ``q`` over the replicates of its cells (paired by seed where possible, else Welch)."""
    used = {k: c for k, c in q.terms.items() if c != 0.0}
    point = q.point(cells)
    if not used:
        return Interval(point, point, point, None, math.nan, "a constant")
    paired = _paired(q, used, cells)
    if paired is not None:
        return paired
    short = [cells[k] for k in used if cells[k].n is None or cells[k].n < MIN_REPLICATES or math.isnan(cells[k].std)]
    if short:
        c = short[0]
        known = [cells[k].n for k in used if cells[k].n is not None]
        has = f"n = {'unknown' if c.n is None else c.n} ({c.replicates})"
        if c.n is not None and c.n >= MIN_REPLICATES:
            has += " but no std"
        return Interval(point, math.nan, math.nan, min(known) if known else None, math.nan, "none",
                        f"too few replicates: {c.label} has {has}; an interval needs ≥ {MIN_REPLICATES} per cell")
    parts = [(c * c * cells[k].std ** 2 / cells[k].n, cells[k].n) for k, c in used.items()]
    var = sum(v for v, _ in parts)
    denom = sum(v * v / (n - 1) for v, n in parts)
    df = var * var / denom if denom > 0 else float(sum(n - 1 for _, n in parts))
    half = t_quantile(df) * math.sqrt(var)
    ns = [cells[k].n for k in used]
    kinds = list(dict.fromkeys(cells[k].replicates for k in used))
    counts = (" + ".join(map(str, ns)) + f" {kinds[0]}" if len(kinds) == 1 else
              " + ".join(f"{cells[k].n} ({cells[k].replicates})" for k in used))
    method = f"t over {counts}" if len(used) == 1 else f"Welch t over {counts} (not paired)"
    return Interval(point, point - half, point + half, min(ns), df, method)


def _paired(q: Linear, used: dict, cells: dict) -> Interval | None:
    seeds = [cells[k].seeds for k in used]
    if any(s is None for s in seeds) or len({frozenset(s) for s in seeds}) != 1 or len(seeds[0]) < MIN_REPLICATES:
        return None
    values = [q.const + sum(c * cells[k].seeds[s] for k, c in used.items()) for s in sorted(seeds[0])]
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(n - 1) * sd / math.sqrt(n)
    method = f"t over {n} seeds" + (", paired by seed" if len(used) > 1 else "")
    return Interval(mean, mean - half, mean + half, n, float(n - 1), method)


def verdict(direction: str, low: float, high: float, paper: float | None, tolerance: float) -> str:
    """The verdict of a claim whose quantity has the 95 % interval [low, high].

    ``>`` / ``<`` (the paper says the quantity is positive / negative): ``holds`` when the interval excludes 0 on
    the paper's side and reaches the paper's value ± tolerance (or the paper prints no value); ``holds, smaller`` /
    ``holds, larger`` when it lies wholly below / above that band; ``does not hold`` when it excludes 0 on the
    other side, or includes 0 but excludes the band; ``inconclusive`` when it includes 0 and the band.
    ``=`` (the paper says the quantity is about its value, 0 where it prints none): ``holds`` when the interval
    lies inside the band, ``does not hold`` when it misses the band, ``inconclusive`` otherwise.
    No interval (too few replicates): ``inconclusive``.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r}; expected one of {', '.join(DIRECTIONS)}")
    if math.isnan(low) or math.isnan(high):
        return "inconclusive"
    if direction == "=":
        target = 0.0 if paper is None else paper
        if target - tolerance <= low and high <= target + tolerance:
            return "holds"
        if high < target - tolerance or low > target + tolerance:
            return "does not hold"
        return "inconclusive"
    sign = 1.0 if direction == ">" else -1.0
    lo, hi = sorted((sign * low, sign * high))
    size = None if paper is None else sign * paper
    misses_band = size is not None and (hi < size - tolerance or lo > size + tolerance)
    if lo > 0:
        if not misses_band:
            return "holds"
        return "holds, smaller" if hi < size - tolerance else "holds, larger"
    if hi < 0 or misses_band:
        return "does not hold"
    return "inconclusive"
