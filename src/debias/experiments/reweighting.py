"""Example reweighting: the FairFace White-vs-people-of-colour experiment and the L2RW MNIST 4-vs-9 grid.

Both share one layout: a *pool* file (uint8 images and binary labels of a train pool and a test pool), one
*split* file per majority share (train / val / test indices for every seed), and runs of a LeNet.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from debias.data import fairface
from debias.data.imbalance import imbalanced_split, official_seed
from debias.data.mnist import read_mnist
from debias.devices import resolve_device
from debias.experiments.reweighting_figures import (FAIRFACE_FIGURES, NOT_IN_PAPER_FIGURES, PAPER_FIGURE, PAPER_SHARES,
                                                    figure_caption, figure_key, share_step)
from debias.io import read_json, sha256_file, torch_save, write_json, write_text
from debias import tasks
from debias.runner import Cell, RunOutputs, data_hashes, train_cells

log = logging.getLogger(__name__)
EXPERIMENTS = ("fairface", "l2rw_mnist")
CLASS_NAMES = {name: tasks.get(name).group_names for name in ("fairface", "l2rw_mnist")}
MNIST_DIGITS = (4, 9)  # label 0 (minority), label 1 (majority)


def share_tag(share: float) -> str:
    return f"{share:.3f}"


# -- pools -------------------------------------------------------------------------------------------------
def _write_with_recipe(obj: dict, out: str, recipe: dict) -> None:
    torch_save(obj, out)
    write_json(Path(out).with_suffix(".json"), {**recipe, "sha256": sha256_file(out)})


def prepare_fairface_pool(section: dict[str, Any], out: str, threads: int = 1) -> None:
    """FairFace train split -> train pool, FairFace val split -> test pool (protocol sheet D1)."""
    image_dir = section["image_dirs"][str(section["padding"])]
    parts = {}
    for split, key in (("train", "train"), ("val", "test")):
        d = fairface.prepare_split(section["root"], image_dir, split, section["image_size"], grayscale=True,
                                   threads=threads)
        parts.update({f"{key}_x": d["x"], f"{key}_y": fairface.white_vs_poc(d["race"]), f"{key}_race": d["race"]})
    _write_with_recipe(parts, out, {"source": "FairFace", "root": section["root"], "image_dir": image_dir,
                                    "padding": section["padding"], "size": section["image_size"],
                                    "label": "1 = White, 0 = the six other race groups",
                                    "counts": {k: int(v.numel()) for k, v in parts.items() if k.endswith("_y")}})


def prepare_mnist_pool(mnist_cfg: dict[str, Any], out: str) -> None:
    """MNIST digits 4 (label 0) and 9 (label 1), train and test pools."""
    data = read_mnist(mnist_cfg["root"], key="mnist.root")
    parts = {}
    for split, key in (("train", "train"), ("test", "test")):
        x, y = data[split]
        keep = (y == MNIST_DIGITS[0]) | (y == MNIST_DIGITS[1])
        parts[f"{key}_x"] = x[keep].unsqueeze(1).contiguous()
        parts[f"{key}_y"] = (y[keep] == MNIST_DIGITS[1]).long()
    _write_with_recipe(parts, out, {"source": "MNIST", "mnist": mnist_cfg, "digits": {"0": 4, "1": 9},
                                    "counts": {k: int(v.numel()) for k, v in parts.items() if k.endswith("_y")}})


# -- splits ------------------------------------------------------------------------------------------------
def build_splits(pool_file: str, section: dict[str, Any], share: float, seeds: list[int], out: str) -> None:
    pool = torch.load(pool_file, weights_only=True)
    train_y, test_y = pool["train_y"].numpy(), pool["test_y"].numpy()
    splits = {}
    for k in seeds:
        split = imbalanced_split(train_y, test_y, share, section["n_train"], section["n_val_per_class"],
                                 section["n_test_per_class"], section["val_from_budget"], official_seed(k))
        splits[k] = {name: torch.from_numpy(idx) for name, idx in split.items()}
    counts = {name: np.bincount(lbl[splits[seeds[0]][name].numpy()], minlength=2).tolist()
              for name, lbl in (("train", train_y), ("val", train_y), ("test", test_y))}
    _write_with_recipe({"splits": splits}, out, {
        "share": share, "seeds": seeds, "data_seeds": {k: official_seed(k) for k in seeds},
        "pool_sha256": sha256_file(pool_file), "counts_per_class": counts,
        **{k: section[k] for k in ("n_train", "n_val_per_class", "n_test_per_class", "val_from_budget")}})
    log.info("share %s: class counts %s", share, counts)


# -- training ----------------------------------------------------------------------------------------------
def train(*, experiment: str, shares: list[str], row: str, hparams, train_cfg, model, seeds, pool_file,
          split_files, metrics, models, states, device) -> None:
    """Train ``row`` for every (share, seed); ``metrics``, ``models``, ``states`` list share-major, seed-minor."""
    dev = resolve_device(device)
    task = tasks.get(experiment)
    n = len(seeds)
    pool_sha256 = data_hashes({"pool": pool_file})
    cells = []
    for i, (share, split_file) in enumerate(zip(shares, split_files)):
        runs = [RunOutputs(seed=int(s), metrics=Path(m), model=Path(md), state=Path(st))
                for s, m, md, st in zip(seeds, metrics[i * n:(i + 1) * n], models[i * n:(i + 1) * n],
                                        states[i * n:(i + 1) * n])]
        inputs = {"pool": pool_file, "split": split_file}
        cells.append(Cell({"share": share}, lambda seed, inputs=inputs: task.load(inputs, dev, seed), runs,
                          {**pool_sha256, **data_hashes({"split": split_file})}))
    first = cells[0].splits_of(cells[0].runs[0]) if cells and cells[0].runs else None
    # one share after another; with train.batch_runs > 1, that many runs at once (a batch may span shares)
    train_cells(experiment=experiment, cells=cells, row=row, hparams=hparams, train_cfg=train_cfg,
                make_backbone=lambda: task.backbone(model, first), model_cfg=model, device=dev,
                group_names=task.group_names, task=task)


# -- aggregation -------------------------------------------------------------------------------------------
# aggregation imports pandas / matplotlib lazily: training jobs never pay for them


def collect(metric_files: list[str], experiment: str):
    import pandas as pd

    names = CLASS_NAMES[experiment]
    rows = []
    for path in metric_files:
        rec = read_json(path)
        for split in ("train", "test"):
            m = rec["metrics"][split]
            per_class = [m[f"acc_{names[c]}"] for c in sorted(names)]
            rows.append({"share": float(rec["variant"]["share"]), "method": rec["method"], "split": split,
                         "seed": rec["seed"], "acc": m["accuracy"], "balanced_acc": float(np.mean(per_class)),
                         **{f"acc_{names[c]}": m[f"acc_{names[c]}"] for c in sorted(names)}})
    return pd.DataFrame(rows)


def summary_table(runs, experiment: str):
    from debias.tables import summarize

    by = ["share", "method", "split"]
    out = summarize(runs, by, "acc", "acc")
    for col in ["balanced_acc"] + [f"acc_{n}" for n in CLASS_NAMES[experiment].values()]:
        extra = summarize(runs, by, col, col).drop(columns="n_seeds")
        out = out.merge(extra, on=by)
    return out


def fairface_table(summary, rows: list[str], scale: str):
    """The Markdown / LaTeX / HTML view of the tidy CSV: rows (method, split), columns the shares, each cell the
    accuracy over all images (mean ± std over seeds) and, in brackets, the mean accuracy on each class; and its
    caption, said from the cells."""
    from debias.tables import cells_caption, fixed, fmt_cell

    order = {r: i for i, r in enumerate(rows)}
    d = summary.assign(row=[f"{m}, {s}" for m, s in zip(summary["method"], summary["split"])],
                       _r=summary["method"].map(order), _s=summary["split"].map({"test": 0, "train": 1}))

    def cell(r, latex):
        return (fmt_cell(r.acc_mean, r.acc_std, r.n_seeds, math.nan, latex=latex)
                + f" (White {fixed(r.acc_white_mean, 2)}, other {fixed(r.acc_poc_mean, 2)})")

    def wide(latex=False):
        w = d.assign(cell=[cell(r, latex) for r in d.itertuples()]).pivot(index="row", columns="share", values="cell")
        w = w.reindex(list(dict.fromkeys(d.sort_values(["_s", "_r"])["row"])))
        w.columns = [f"{c:.2f}" for c in w.columns]
        w.index.name = "method, split"
        return w.fillna("–")

    caption = (f"FairFace White vs the six other groups ({scale} scale): accuracy per majority (White) share of the "
               f"training set (columns; 0.50: the baseline on a balanced set), method and split (rows), "
               f"{cells_caption(summary['n_seeds'])}, then in brackets the mean accuracy on White images and on the "
               "other groups (a model predicting one class for everything scores 1.00 on one, 0.00 on the other). "
               "The paper prints no numbers, only its Figures 1–4: no paper column.")
    return wide(), wide(latex=True), caption


def aggregate_fairface(metric_files: list[str], rows: list[str], scale: str, out):
    """The tidy CSV behind Figures 1-4 and its tables (``out.csv``, ``md``, ``tex``, ``html``); the four figures
    and the per-class companion of each (``out.figures``: png, pdf), each with its report caption beside it
    (the png's name, .rst)."""
    from debias.plots import method_offsets, seeds_figure
    from debias.tables import write_tables

    runs = collect(metric_files, "fairface")
    summary = summary_table(runs, "fairface")
    order = {r: i for i, r in enumerate(rows)}
    summary = summary.sort_values(["split", "share", "method"], key=lambda c: c.map(order) if c.name == "method" else c)
    summary["scale"] = scale
    write_text(out.csv, summary.to_csv(index=False, float_format="%.6g"))
    md, tex, caption = fairface_table(summary, rows, scale)
    write_tables(md, caption, "tab:fairface_reweighting", out.md, out.tex, out.html, latex_wide=tex)
    names = CLASS_NAMES["fairface"]
    for path in out.figures:
        if not path.endswith(".png"):
            continue
        kind, split, tag = figure_key(Path(path).stem)
        lo, hi = FAIRFACE_FIGURES[tag]
        d = runs[(runs.split == split) & runs.share.between(lo - 1e-9, hi + 1e-9)]
        if kind == "acc":
            panels = {"acc": f"{split} accuracy (paper's Figure {PAPER_FIGURE[(split, tag)]})"}
        else:
            panels = {f"acc_{names[1]}": f"{split} accuracy on White images (the majority)",
                      f"acc_{names[0]}": f"{split} accuracy on the six other groups (the minority)"}
        targets = [path, str(Path(path).with_suffix(".pdf"))]
        seeds_figure(d, "share", "acc", "method", rows, "majority (White) share of the training set", panels,
                     f"FairFace ({scale} scale), {split} split, shares {lo:.2f}-{hi:.2f}"
                     + (" (0.5: balanced baseline)" if lo <= 0.5 else "")
                     + "; the paper's curves: not drawn (no values)",
                     targets, legend_labels=NOT_IN_PAPER_FIGURES, grid=PAPER_SHARES[tag], spacing=share_step(tag))
        offset = max(map(abs, method_offsets(d["share"], rows, spacing=share_step(tag)).values()))
        n_seeds = d.groupby(["share", "method"]).size().tolist()
        write_text(Path(path).with_suffix(".rst"), figure_caption(
            Path(path).stem, scale, [r for r in rows if r in set(d["method"])], sorted(set(d["share"])), n_seeds,
            offset))
    return summary


def aggregate_mnist(metric_files: list[str], paper_file: str, rows: list[str], scale: str, out):
    """The MNIST 4-vs-9 grid: test error per share and method (``out.csv``, ``md``, ``tex``, ``html``) and its
    figure (``out.png``, ``pdf``: seeds as dots, the third-party reference values dashed)."""
    import yaml

    from debias.plots import seeds_figure
    from debias.tables import cells_caption, pivot_cells, summarize, with_paper, write_tables

    runs = collect(metric_files, "l2rw_mnist")
    runs = runs[runs.split == "test"].assign(err=lambda d: 1.0 - d.acc)
    paper = yaml.safe_load(Path(paper_file).read_text())["l2rw_mnist"]
    summary = with_paper(summarize(runs, ["method", "share"], "err", "err"), paper, "method", "share", "err")
    order = {r: i for i, r in enumerate(rows)}
    summary = summary.sort_values(["method", "share"], key=lambda c: c.map(order) if c.name == "method" else c)
    summary["scale"] = scale
    summary["paper_comparable"] = False
    write_text(out.csv, summary.to_csv(index=False, float_format="%.6g"))
    ref_at = sorted({float(s) for v in paper["values"].values() for s in v})
    caption = (f"Learning to reweight, MNIST 4 vs 9: test error, "
               f"{cells_caption(summary['n_seeds'], summary['paper'], paper['reference'])} ({scale} scale). "
               + (paper["comparison"] if summary["paper"].notna().any() else
                  f"Ren et al. plot this grid without printing values; the only reference values, a third-party "
                  f"PyTorch port's under another protocol, are at p = {', '.join(f'{s:g}' for s in ref_at)}, a "
                  "share this run did not train: no reference column."))
    fmt = lambda c: f"p={c:g}"  # noqa: E731
    write_tables(pivot_cells(summary, "method", "share", "err", rows, col_fmt=fmt), caption, "tab:l2rw_mnist",
                 out.md, out.tex, out.html,
                 latex_wide=pivot_cells(summary, "method", "share", "err", rows, latex=True, col_fmt=fmt))
    seeds_figure(runs, "share", "err", "method", rows, "majority (digit 9) share of the training set",
                 {"err": "test error (balanced test set)"},
                 f"Learning to reweight, MNIST 4 vs 9 ({scale} scale): test error per share",
                 [out.png, out.pdf], grid=PAPER_SHARES["l2rw_mnist"], spacing=share_step("l2rw_mnist"),
                 ylabel="test error", references={k: v for k, v in paper["values"].items() if k in rows},
                 reference_label=f"{paper['reference']} (another protocol)")
    return summary
