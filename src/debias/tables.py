"""Tidy results -> summary over seeds -> Markdown, LaTeX and HTML tables (rendered from the tidy CSV's frame): the
one renderer of every table (``write_tables``) and the helpers that format its cells."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from html import escape

import pandas as pd

from debias.io import write_text

CSV_FLOAT_FORMAT = "%.6g"  # how every tidy CSV writes its floats


def fixed(x: float, digits: int, sign: bool = False) -> str:
    """``x`` with ``digits`` decimals, rounded half away from zero from the 6 significant digits a tidy CSV keeps
    (``CSV_FLOAT_FORMAT``): a table made from the frame and a snippet made from its CSV print the same (the float
    mean of 0.342 and 0.389 lies a hair below 0.3655 or above it, which ``:.3f`` turns into 0.365 or 0.366)."""
    if math.isnan(x):
        return "nan"
    q = Decimal(CSV_FLOAT_FORMAT % x).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return f"{q:+f}" if sign else f"{q:f}"


def summarize(runs: pd.DataFrame, by: list[str], value: str, prefix: str) -> pd.DataFrame:
    """Mean, sample std (ddof=1; NaN for one seed) and count of ``value`` per ``by`` group."""
    g = runs.groupby(by, sort=False)[value]
    out = g.agg(["mean", "std", "count"]).reset_index()
    return out.rename(columns={"mean": f"{prefix}_mean", "std": f"{prefix}_std", "count": "n_seeds"})


def paper_lookup(paper: dict, row: str, column: float, decimals: int = 3) -> float:
    """The paper's value for (row, column), or NaN where the paper has none; float keys matched rounded."""
    values = paper.get("values", {}).get(row, {})
    for key, val in values.items():
        if round(float(key), decimals) == round(float(column), decimals):
            return float(val)
    return math.nan


def with_paper(summary: pd.DataFrame, paper: dict, row: str, column: str, prefix: str) -> pd.DataFrame:
    """``summary`` plus ``paper`` (the paper's value of each (row, column) cell, NaN where it has none) and
    ``delta`` = ``<prefix>_mean`` - paper."""
    out = summary.copy()
    out["paper"] = [paper_lookup(paper, r, c) for r, c in zip(out[row], out[column])]
    out["delta"] = out[f"{prefix}_mean"] - out["paper"]
    return out


def paper_value(x: float, digits: int) -> str:
    """A paper's value with ``digits`` decimals, or more where the paper gives more (0.4055 stays 0.4055)."""
    decimals = len(f"{x:g}".partition(".")[2]) if "e" not in f"{x:g}" else digits
    return f"{x:.{max(digits, decimals)}f}"


def fmt_cell(mean: float, std: float, n: int, paper: float, digits: int = 3, latex: bool = False) -> str:
    """mean ± std (n where one seed) [the paper's value as the paper prints it, the difference]."""
    pm = r"$\pm$" if latex else "±"
    cell = fixed(mean, digits) + (f" {pm} {fixed(std, digits)}" if not math.isnan(std) else f" (n={n})")
    if not math.isnan(paper):
        cell += f" [{paper_value(paper, digits)}, {fixed(mean - paper, digits, sign=True)}]"
    return cell


def fmt_plain_cell(mean: float, std: float = math.nan, paper: float = math.nan, digits: int = 2, flag: str = "",
                   detail: str = "", latex: bool = False) -> str:
    """mean ± std (where ``std`` is not NaN), ``detail``, [the paper's value then ``flag``, the difference] (where
    ``paper`` is not NaN), every number with ``digits`` decimals as Python's format rounds it: the COCO tables'
    cells (unlike ``fmt_cell``: no seed count, the paper's value with ``digits`` decimals too)."""
    pm = r"$\pm$" if latex else "±"
    cell = f"{mean:.{digits}f}" + (f" {pm} {std:.{digits}f}" if not math.isnan(std) else "") + detail
    if not math.isnan(paper):
        cell += f" [{paper:.{digits}f}{flag}, {mean - paper:+.{digits}f}]"
    return cell


def cells_caption(n_seeds, paper=None, reference: str = "paper value",
                  units: tuple[str, str] = ("seed", "seeds")) -> str:
    """What a table's cells hold, said from the cells themselves (their counts ``n_seeds`` and their reference
    values ``paper``, NaN where a cell has none), so that a caption never promises a std or a bracket that no cell
    shows: ``mean ± std over 2 seeds``, ``one seed per cell (no std)``, then ``[paper value, difference]`` where some
    cell has a reference value (``... where it has one`` when not every cell has)."""
    one, many = units
    ns = sorted({int(n) for n in n_seeds if not pd.isna(n)})
    if not ns or ns[-1] <= 1:
        text = f"one {one} per cell (no std)"
    else:
        span = f"{ns[0]}" if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"
        text = f"mean ± std over {span} {many}" + (f" (a cell of one {one}: the value alone)" if ns[0] <= 1 else "")
    refs = [not pd.isna(p) for p in (paper if paper is not None else [])]
    if any(refs):
        text += f" [{reference}, difference]" + ("" if all(refs) else " where it has one")
    return text


def pivot_cells(summary: pd.DataFrame, row: str, col: str, prefix: str, rows: list[str], latex: bool = False,
                col_fmt=lambda c: f"{c}") -> pd.DataFrame:
    cells = summary.assign(
        cell=[fmt_cell(m, s, n, p, latex=latex)
              for m, s, n, p in zip(summary[f"{prefix}_mean"], summary[f"{prefix}_std"], summary["n_seeds"],
                                    summary["paper"])]
    )
    wide = cells.pivot(index=row, columns=col, values="cell")
    wide = wide.reindex([r for r in rows if r in wide.index])
    wide.columns = [col_fmt(c) for c in wide.columns]
    wide.index.name = row
    return wide.fillna("–")


def to_markdown(wide: pd.DataFrame) -> str:
    header = [wide.index.name] + list(wide.columns)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for idx, row in wide.iterrows():
        lines.append("| " + " | ".join([str(idx)] + [str(v) for v in row]) + " |")
    return "\n".join(lines) + "\n"


LATEX_TEXT = [("%", r"\%"), ("&", r"\&"), ("#", r"\#"), ("_", r"\_"), ("±", r"$\pm$"), ("σ²", r"$\sigma^2$"),
              ("γ", r"$\gamma$"), ("Δ", r"$\Delta$"), ("ε", r"$\varepsilon$"), ("η", r"$\eta$"), ("μ", r"$\mu$")]


def latex_text(text) -> str:
    """Plain text (a caption, a header) made safe for LaTeX: its special characters escaped, Greek and ± as math."""
    out = str(text)
    for plain, latex in LATEX_TEXT:
        out = out.replace(plain, latex)
    return out


def to_latex(wide: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs table; the caption and the headers are plain text (escaped here), the cells LaTeX as given."""
    esc = latex_text

    cols = "l" + "c" * len(wide.columns)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
             " & ".join([esc(wide.index.name)] + [esc(c) for c in wide.columns]) + r" \\", r"\midrule"]
    for idx, row in wide.iterrows():
        lines.append(" & ".join([esc(idx)] + [str(v) for v in row]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{esc(caption)}}}", rf"\label{{{label}}}",
              r"\end{table}"]
    return "\n".join(lines) + "\n"


HTML_STYLE = ("body{font:14px/1.45 system-ui,sans-serif;margin:1em;color:#222}p{max-width:80em}"
              "table{border-collapse:collapse;margin:.8em 0}th,td{border:1px solid #ccc;padding:.25em .6em;"
              "text-align:right;vertical-align:top}th{background:#f3f3f3;white-space:nowrap}"
              "tbody th{text-align:left}"
              ".notes{font-size:12px;color:#444}")


def to_html(wide: pd.DataFrame, caption: str, notes=()) -> str:
    """A standalone HTML page of the table: its caption above, the notes below, every cell as in the Markdown
    (the report shows it in a frame)."""
    head = "".join(f"<th>{escape(str(c))}</th>" for c in [wide.index.name, *wide.columns])
    body = "".join("<tr><th>" + escape(str(idx)) + "</th>" + "".join(f"<td>{escape(str(v))}</td>" for v in row)
                   + "</tr>\n" for idx, row in wide.iterrows())
    notes = "".join(f'<p class="notes">{escape(n)}</p>\n' for n in notes if n)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(caption[:80])}</title>'
            f"<style>{HTML_STYLE}</style></head>\n<body>\n<p>{escape(caption)}</p>\n<table>\n<thead><tr>{head}</tr>"
            f"</thead>\n<tbody>\n{body}</tbody>\n</table>\n{notes}</body></html>\n")


def write_tables(wide: pd.DataFrame, caption: str, label: str, md: str, tex: str | None, html: str | None, notes=(),
                 latex_wide: pd.DataFrame | None = None, latex_notes=None) -> None:
    """The one renderer of every table: Markdown (caption, table, notes), LaTeX (``latex_wide`` where its cells
    differ; the notes appended to the caption) and HTML, all from the same frame; ``tex`` or ``html`` None where a
    rule makes no such file."""
    notes = [n for n in notes if n]
    latex_notes = notes if latex_notes is None else [n for n in latex_notes if n]
    write_text(md, f"{caption}\n\n" + to_markdown(wide) + "".join(f"\n{n}\n" for n in notes))
    if tex is not None:
        write_text(tex, to_latex(wide if latex_wide is None else latex_wide, " ".join([caption, *latex_notes]), label))
    if html is not None:
        write_text(html, to_html(wide, caption, notes))
