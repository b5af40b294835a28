"""The manual's result snippets, generated from the tables a run wrote, never typed by hand.

    python -m debias.readme_results --results results/mini            # rewrite the snippets in README.md, docs/*.md
    python -m debias.readme_results --results results/mini --check    # exit 1 if any of them differs

The manual is README.md and the pages of docs/*.md beside it. Each snippet is marked with
``<!-- results:NAME -->`` ... ``<!-- /results:NAME -->`` in whichever of those files holds its text (the claims in
the README, each experiment's mini result on its page); everything between the two markers is replaced by the
snippet made from ``<results>/tables/``. A snippet marked in none of the files is an error naming its marker.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Callable

import pandas as pd

from debias.io import write_text
from debias.tables import fixed, paper_value


def _pm(mean: float, std: float) -> str:
    return fixed(mean, 3) + ("" if pd.isna(std) else f" ± {fixed(std, 3)}")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def colored_mnist(tables: Path) -> str:
    d = pd.read_csv(tables / "colored_mnist.csv")
    cols = sorted(d.sigma2.unique())  # every column of the paper's table that the run has
    rows = []
    for method in d.method.unique():
        cells = []
        for s in cols:
            r = d[(d.method == method) & (d.sigma2 == s)].iloc[0]
            cells.append(_pm(r.acc_mean, r.acc_std) + ("" if pd.isna(r.paper) else f" ({paper_value(r.paper, 3)})"))
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
                         f"{fixed(r.acc_mean.iloc[0], 2)} (White {fixed(r.acc_white_mean.iloc[0], 2)}, "
                         f"other {fixed(r.acc_poc_mean.iloc[0], 2)})")
        rows.append([m, *cells])
    n = int(d.n_seeds.max())
    return (f"Test accuracy (balanced test set), mean over {n} seeds, with the accuracy on each class:\n\n"
            + _table(["method"] + [f"share {s:g}" for s in shares], rows))


def coco(tables: Path) -> str:
    leak = pd.read_csv(tables / "coco_leakage.csv")
    mp = pd.read_csv(tables / "coco_map.csv")
    augs = [a for a in ("nomix", "mixup", "cutmix") if f"{a}_mean" in leak.columns]
    names = {"nomix": "normal", "mixup": "mixup", "cutmix": "cutmix"}

    def row(attacker, pairing, split="none"):
        return leak[(leak.attacker == attacker) & (leak.pairing == pairing) & (leak.split == split)].iloc[0]

    r = row("unbalanced", "random")
    rounds, seeds = int(r[f"{augs[0]}_n"]), int(mp.n_seeds.max())
    table3 = _table(["", "dataset"] + [names[a] for a in augs], [
        ["leakage", f"{fixed(r.dataset_mean, 2)} ± {fixed(r.dataset_std, 2)}"]
        + [f"{fixed(r[f'{a}_mean'], 2)} ± {fixed(r[f'{a}_std'], 2)}" for a in augs],
        ["Δ = model − dataset", ""] + [fixed(r[f"{a}_delta"], 2, sign=True) for a in augs]])
    lrs = sorted(mp.lr.unique())
    table2 = _table(["lr"] + [names[a] for a in augs], [
        [f"{lr:.0e}"] + [fixed(mp[(mp.augmentation == a) & (mp.lr == lr)].map_mean.iloc[0], 1) for a in augs]
        for lr in lrs])
    lines = [f"Table 3, unbalanced attacker, random partners, original train split (%, {rounds} attacker values "
             f"per cell: rounds × seeds):", "", table3, "",
             f"Dataset leakage against the test split's majority-gender rate {fixed(r.majority, 1)} %"]
    if ((leak.attacker == "balanced") & (leak.split == "none")).any():
        b = row("balanced", "random")
        lines[-1] += f"; with the balanced, folded attacker {fixed(b.dataset_mean, 1)} % (chance 50 %)"
    lines[-1] += "."
    if "balanced" in set(leak.pairing) and "mixup" in augs:
        bal = row("unbalanced", "balanced")
        lines[-1] += (f" Gender-balanced partners: mixup {fixed(bal.mixup_mean, 1)} % (random partners "
                      f"{fixed(r.mixup_mean, 1)} %).")
    if "min_delta_f1" in leak.columns:
        curved = leak[leak.f1_curve_min.notna()]  # rows whose attacker has a curve
        f1 = curved[[f"{a}_val_f1" for a in augs]].to_numpy(dtype=float)
        matched = curved[[f"{a}_delta_f1" for a in augs]].notna().to_numpy()
        lines += ["", f"Wang's F1-matched Δ (Table 3's column \"min. F1-matched ampl.\"): {matched.sum()} of "
                  f"{matched.size} cells in range; the models' val macro-F1 {f1.min():.3f}–{f1.max():.3f}, the "
                  f"flipped ground truth's {curved.f1_curve_min.min():.3f}–{curved.f1_curve_max.max():.3f}."]
    lines += ["", f"Table 2, test mAP (%) over the classes present, {seeds} seed(s):", "", table2]
    return "\n".join(lines)


def waterbirds(tables: Path) -> str:
    d = pd.read_csv(tables / "waterbirds.csv")
    columns = list(dict.fromkeys(d.column))
    rows = []
    for row in d.row.unique():
        cells = []
        for col in columns:
            r = d[(d.row == row) & (d.column == col)].iloc[0]
            cell = fixed(r["mean"], 1) + ("" if pd.isna(r["std"]) else f" ± {fixed(r['std'], 1)}")
            cells.append(cell + ("" if pd.isna(r.paper) else f" ({paper_value(r.paper, 1)})"))
        rows.append([row, *cells])
    n = int(d.n_seeds.max())
    return (f"Test accuracy (%), mean ± std over {n} seeds (the paper's value in brackets; not directly comparable, "
            "see the table's caption):\n\n" + _table(["method (selection)"] + columns, rows))


def claims(tables: Path) -> str:
    """Per paper, which claims hold (rule claims' claims.csv; debias.claims)."""
    path = tables / "claims.csv"
    if not path.is_file():
        return f"No claims table in this run ({path.name}): the pipeline's `claims` rule writes it."
    d = pd.read_csv(path, dtype={"paper": str}, keep_default_na=False, na_values=[""])

    def ids(rows) -> str:
        return ", ".join(f"`{r.claim}`" + (f" ({r.verdict.split(', ')[1]})" if ", " in r.verdict else "")
                         for r in rows.itertuples()) or "–"

    rows = []
    for paper, g in d.groupby("paper", sort=True):
        holds = g[g.verdict.str.startswith("holds")]
        rows.append([f"{paper} {g.paper_title.iloc[0]}", str(len(g)), ids(holds), ids(g[g.verdict == "does not hold"]),
                     str(int((g.verdict == "inconclusive").sum())), str(int((g.verdict == "not run").sum()))])
    n = d.n.dropna()
    reps = (f"n = {int(n.min())}–{int(n.max())}" if len(n) and n.min() != n.max() else
            f"n = {int(n.max())}" if len(n) else "none")
    return (f"{d.scale.iloc[0].capitalize()} scale: {len(d)} claims, each a quantity over the tables with a 95 % "
            f"t interval over its replicates ({reps}: seeds; COCO leakage: attacker rounds × seeds); every claim "
            f"with its value, interval and the paper's value in `tables/claims.md`:\n\n"
            + _table(["paper", "claims", "holds", "does not hold", "inconclusive", "not run"], rows))


def matrix(tables: Path) -> str:
    """Per dataset of the method x dataset matrix: how many methods ran, the best and the baseline on the worst-group
    metric (rule matrix_table's method_matrix.csv)."""
    path = tables / "method_matrix.csv"
    if not path.is_file():
        return f"No matrix table in this run ({path.name}): the pipeline's `matrix_table` rule writes it."
    d = pd.read_csv(path)
    rows = []
    for dataset in d.dataset.unique():
        cells = d[d.dataset == dataset]
        worst = cells[cells.metric == cells.metric.iloc[0]]
        ok = worst[worst.status == "ok"].sort_values("mean", ascending=False, kind="stable")
        base = worst[worst.method == "baseline"]
        best = ok.iloc[0] if len(ok) else None
        rows.append([dataset, f"{len(ok)} of {len(worst)}", str(worst.metric.iloc[0]),
                     "–" if best is None else f"`{best.method}` {best['mean']:.1f}",
                     "–" if base.empty or base.status.iloc[0] != "ok" else f"{base['mean'].iloc[0]:.1f}"])
    n = int(d.loc[d.status == "ok", "n_seeds"].max())
    return (f"Test worst-group metric (%), mean over {n} seeds; every cell, the average beside it and each `n/a`'s "
            f"reason in `tables/method_matrix.md`:\n\n"
            + _table(["dataset", "methods run", "metric", "best", "baseline"], rows))


def matrix_cells(tables: Path) -> str:
    """The matrix's every cell as the rule rendered it (method_matrix.md's table and notes, without its caption)."""
    path = tables / "method_matrix.md"
    if not path.is_file():
        return f"No matrix table in this run ({path.name}): the pipeline's `matrix_table` rule writes it."
    return path.read_text().split("\n\n", 1)[1].strip()


SNIPPETS: dict[str, Callable[[Path], str]] = {"colored_mnist": colored_mnist, "l2rw_mnist": l2rw_mnist,
                                              "fairface": fairface, "coco": coco, "waterbirds": waterbirds,
                                              "claims": claims, "matrix": matrix,
                                              "matrix_cells": matrix_cells}


def _pair(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- results:{name} -->\n)(?:.*?\n)?(<!-- /results:{name} -->)", re.S)


def _not_found(where: str, name: str, text: str) -> KeyError:
    half = f"<!-- results:{name} -->" in text or f"<!-- /results:{name} -->" in text
    return KeyError(f"{where}: marker pair <!-- results:{name} --> ... <!-- /results:{name} --> not found"
                    + (" (one marker without the other)" if half else ""))


def _render(text: str, results: Path, names: list[str]) -> str:
    for name in names:
        snippet = SNIPPETS[name](Path(results) / "tables")
        text = _pair(name).sub(lambda m: m.group(1) + snippet + "\n" + m.group(2), text)
    return text


def render(readme: str, results: Path) -> str:
    """``readme`` with every snippet replaced by the one made from ``results``; each must be marked in it."""
    for name in SNIPPETS:
        if not _pair(name).search(readme):
            raise _not_found("README", name, readme)
    return _render(readme, results, list(SNIPPETS))


def manual_files(readme: Path | str = "README.md") -> list[Path]:
    """The manual: ``readme`` and the pages ``docs/*.md`` in its folder."""
    readme = Path(readme)
    return [readme, *sorted((readme.parent / "docs").glob("*.md"))]


def render_files(texts: dict[Path, str], results: Path) -> dict[Path, str]:
    """Each text (file -> its text) with the snippets it marks replaced by those made from ``results``.

    Every snippet must be marked in one of the texts at least (a KeyError names each marker pair found in none);
    a marker whose other half is missing is a KeyError naming its file."""
    marked = {path: [n for n in SNIPPETS if _pair(n).search(text)] for path, text in texts.items()}
    for path, text in texts.items():
        for name in SNIPPETS:
            if name not in marked[path] and (f"results:{name} -->" in text):
                raise _not_found(str(path), name, text)
    missing = [n for n in SNIPPETS if not any(n in names for names in marked.values())]
    if missing:
        raise KeyError(f"marker pair(s) found in none of {', '.join(str(p) for p in texts)}: "
                       + "; ".join(f"<!-- results:{n} --> ... <!-- /results:{n} -->" for n in missing))
    return {path: _render(text, results, marked[path]) for path, text in texts.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results/mini", help="the run's results folder (default results/mini)")
    p.add_argument("--readme", default="README.md", help="the README; its pages docs/*.md beside it are rendered too")
    p.add_argument("--check", action="store_true", help="only compare; exit 1 if a file of the manual differs")
    args = p.parse_args(argv)
    old = {path: path.read_text() for path in manual_files(args.readme)}
    new = render_files(old, Path(args.results))
    stale = [path for path in old if new[path] != old[path]]
    if args.check:
        for path in stale:
            print(f"{path}: result snippets differ from {args.results}; run "
                  f"`python -m debias.readme_results --results {args.results}`", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        write_text(path, new[path])
    return 0


if __name__ == "__main__":
    sys.exit(main())
