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
from debias.tables import fixed, paper_value


def _pm(mean: float, std: float) -> str:
    return fixed(mean, 3) + ("" if pd.isna(std) else f" ± {fixed(std, 3)}")


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


SNIPPETS: dict[str, Callable[[Path], str]] = {"colored_mnist": colored_mnist, "l2rw_mnist": l2rw_mnist,
                                              "fairface": fairface, "coco": coco, "waterbirds": waterbirds,
                                              "claims": claims}


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
