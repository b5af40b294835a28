"""The README's result snippets, generated from the tables a run wrote, never typed by hand.

    python -m debias.readme_results --results results/mini            # rewrite the snippets in README.md
    python -m debias.readme_results --results results/mini --check    # exit 1 if README.md differs

README.md marks each snippet with ``<!-- results:NAME -->`` ... ``<!-- /results:NAME -->``; everything between
the two markers is replaced by the snippet made from ``<results>/tables/``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Callable

import pandas as pd

from debias.io import write_text


def _pm(mean: float, std: float) -> str:
    return f"{mean:.3f}" + ("" if pd.isna(std) else f" ± {std:.3f}")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def colored_mnist(tables: Path) -> str:
    d = pd.read_csv(tables / "colored_mnist.csv")
    sig = sorted(d.sigma2.unique())
    cols = [s for s in (sig[0], sig[-1])] if len(sig) > 1 else sig
    rows = []
    for method in d.method.unique():
        cells = []
        for s in cols:
            r = d[(d.method == method) & (d.sigma2 == s)].iloc[0]
            cells.append(f"{_pm(r.acc_mean, r.acc_std)} ({r.paper:.3f})" if not pd.isna(r.paper) else _pm(r.acc_mean, r.acc_std))
        rows.append([method, *cells])
    n = int(d.n_seeds.max())
    return (f"Test accuracy, mean ± std over {n} seeds (the paper's value in brackets; not directly comparable, "
            f"see the table's caption):\n\n" + _table(["method"] + [f"σ² = {s:.3f}" for s in cols], rows))


def l2rw_mnist(tables: Path) -> str:
    d = pd.read_csv(tables / "l2rw_mnist.csv")
    shares = sorted(d.share.unique())
    rows = [[m] + [_pm(*d[(d.method == m) & (d.share == s)][["err_mean", "err_std"]].iloc[0]) for s in shares]
            for m in d.method.unique()]
    n = int(d.n_seeds.max())
    return f"Test error, mean ± std over {n} seeds:\n\n" + _table(["method"] + [f"p = {s:g}" for s in shares], rows)


def fairface(tables: Path) -> str:
    d = pd.read_csv(tables / "fairface_reweighting.csv")
    d = d[d.split == "test"]
    shares = [s for s in (0.5, 0.9, 0.99) if (d.share.round(3) == s).any()]
    rows = []
    for m in d.method.unique():
        cells = []
        for s in shares:
            r = d[(d.method == m) & (d.share.round(3) == s)]
            cells.append("–" if r.empty else
                         f"{r.acc_mean.iloc[0]:.2f} (White {r.acc_white_mean.iloc[0]:.2f}, other {r.acc_poc_mean.iloc[0]:.2f})")
        rows.append([m, *cells])
    n = int(d.n_seeds.max())
    return (f"Test accuracy (balanced test set), mean over {n} seeds, with the accuracy on each class:\n\n"
            + _table(["method"] + [f"share {s:g}" for s in shares], rows))


def waterbirds(tables: Path) -> str:
    d = pd.read_csv(tables / "waterbirds.csv")
    columns = list(dict.fromkeys(d.column))
    rows = []
    for row in d.row.unique():
        cells = []
        for col in columns:
            r = d[(d.row == row) & (d.column == col)].iloc[0]
            cell = f"{r['mean']:.1f}" + ("" if pd.isna(r['std']) else f" ± {r['std']:.1f}")
            cells.append(cell + ("" if pd.isna(r.paper) else f" ({r.paper:g})"))
        rows.append([row, *cells])
    n = int(d.n_seeds.max())
    return (f"Test accuracy (%), mean ± std over {n} seeds (the paper's value in brackets; not directly comparable, "
            "see the table's caption):\n\n" + _table(["method (selection)"] + columns, rows))


SNIPPETS: dict[str, Callable[[Path], str]] = {"colored_mnist": colored_mnist, "l2rw_mnist": l2rw_mnist,
                                              "fairface": fairface, "waterbirds": waterbirds}


def render(readme: str, results: Path) -> str:
    """``readme`` with every marked snippet replaced by the one made from ``results``."""
    for name, make in SNIPPETS.items():
        pattern = re.compile(rf"(<!-- results:{name} -->\n)(?:.*?\n)?(<!-- /results:{name} -->)", re.S)
        if not pattern.search(readme):
            raise KeyError(f"README: marker pair <!-- results:{name} --> ... <!-- /results:{name} --> not found")
        snippet = make(Path(results) / "tables")
        readme = pattern.sub(lambda m: m.group(1) + snippet + "\n" + m.group(2), readme)
    return readme


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results/mini", help="the run's results folder (default results/mini)")
    p.add_argument("--readme", default="README.md")
    p.add_argument("--check", action="store_true", help="only compare; exit 1 if the README differs")
    args = p.parse_args(argv)
    old = Path(args.readme).read_text()
    new = render(old, Path(args.results))
    if args.check:
        if new != old:
            print(f"{args.readme}: result snippets differ from {args.results}; run "
                  f"`python -m debias.readme_results --results {args.results}`", file=sys.stderr)
            return 1
        return 0
    write_text(args.readme, new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
