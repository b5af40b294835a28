"""Colored MNIST / Learning Not to Learn: prepare, train, aggregate (called by the rules' scripts)."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

import torch

from debias.data import colored_mnist as cm
from debias.data.mnist import read_mnist
from debias.devices import resolve_device
from debias.io import read_json, sha256_file, torch_save, write_json, write_text
from debias import tasks
from debias.runner import Cell, RunOutputs, data_hashes, train_cells

log = logging.getLogger(__name__)
GROUP_NAMES = tasks.get("colored_mnist").group_names
# Said in the table, the figure and the report wherever our numbers sit beside the paper's.
NOT_COMPARABLE = {
    "generate": "not directly comparable: our data are generated with our own colours (tab10 means), the "
                "paper's come from the authors' files, whose colours are unpublished",
    "authors": None,
}


def prepare(section: dict[str, Any], mnist_cfg: dict[str, Any], sigma2: float, data_out: str, recipe_out: str) -> None:
    """Write the prepared dataset for one sigma2 and, beside it, its sha256 and the recipe."""
    if section["source"] == "authors":
        data = cm.load_authors_npy(section["authors_dir"], sigma2)
        recipe = {"source": "authors", "file": str(cm.authors_file(section["authors_dir"], sigma2))}
    else:
        mnist = read_mnist(mnist_cfg["root"], key="mnist.root")
        data = cm.generate(mnist, section["colors"], sigma2, section["data_seed"])
        recipe = {"source": "generate", "mnist": mnist_cfg, "colors": section["colors"],
                  "data_seed": section["data_seed"], "test_colors": "mean drawn uniformly, independent of the label"}
    recipe.update(sigma2=sigma2, counts={s: int(data[f"{s}_y"].numel()) for s in ("train", "test")})
    torch_save(data, data_out)
    recipe["sha256"] = sha256_file(data_out)
    write_json(recipe_out, recipe)
    log.info("prepared %s: %s", data_out, json.dumps(recipe["counts"]))


def train(*, hparams, model, train_cfg, sigma2s: list[str], row: str, seeds, data: list[str], init_models,
          metrics, models, states, device) -> None:
    """Train ``row`` for every (sigma2, seed) of the job; ``data`` has one prepared file per sigma2, and
    ``init_models``, ``metrics``, ``models``, ``states`` list sigma2-major, seed-minor. One sigma2's data is on the
    device at a time, except in a batch of runs (``train.batch_runs``) spanning several."""
    dev = resolve_device(device)
    task = tasks.get("colored_mnist")
    k = int(train_cfg.get("batch_runs", 1))

    @functools.lru_cache(maxsize=1 if k == 1 else None)  # batched: a batch may span every sigma2 of the job
    def load(data_file):
        return task.load({"data": data_file}, dev, seed=0)

    n = len(seeds)
    cells = []
    for i, (sigma2, data_file) in enumerate(zip(sigma2s, data)):
        part = slice(i * n, (i + 1) * n)
        runs = [
            RunOutputs(seed=int(s), metrics=Path(mo), model=Path(md), state=Path(st),
                       init_model=Path(init) if init else None)
            for s, mo, md, st, init in zip(seeds, metrics[part], models[part], states[part],
                                           init_models[part] if init_models else [None] * n)
        ]
        cells.append(Cell({"sigma2": sigma2}, lambda seed, f=data_file: load(f), runs,
                          data_hashes({"data": data_file})))
    train_cells(experiment="colored_mnist", cells=cells, row=row, hparams=hparams, train_cfg=train_cfg,
                make_backbone=lambda: task.backbone(model, {}), model_cfg=model, device=dev,
                group_names=task.group_names, task=task)


# aggregation imports pandas / matplotlib lazily: training jobs never pay for them


def collect(metric_files: list[str]):
    import pandas as pd

    rows = []
    for path in metric_files:
        rec = read_json(path)
        test = rec["metrics"]["test"]
        rows.append({
            "method": rec["method"], "sigma2": float(rec["variant"]["sigma2"]), "seed": rec["seed"],
            "test_acc": test["accuracy"], "train_acc": rec["metrics"]["train"]["accuracy"],
            "test_acc_bias_conflicting": test.get("acc_bias_conflicting", float("nan")),
            "train_time_s": rec["train_time_s"], "device": rec["device_name"],
        })
    return pd.DataFrame(rows)


def aggregate(metric_files: list[str], paper_file: str, rows: list[str], scale: str, source: str, out):
    import yaml

    from debias.plots import line_figure
    from debias.tables import cells_caption, pivot_cells, summarize, with_paper, write_tables

    runs = collect(metric_files)
    paper = yaml.safe_load(Path(paper_file).read_text())["colored_mnist"]
    summary = with_paper(summarize(runs, ["method", "sigma2"], "test_acc", "acc"), paper, "method", "sigma2", "acc")
    conflicting = summarize(runs, ["method", "sigma2"], "test_acc_bias_conflicting", "acc_bias_conflicting")
    summary = summary.merge(conflicting.drop(columns="n_seeds"), on=["method", "sigma2"])
    summary["scale"] = scale
    note = NOT_COMPARABLE[source]
    summary["paper_comparable"] = note is None
    order = {r: i for i, r in enumerate(rows)}
    summary = summary.sort_values(["method", "sigma2"], key=lambda c: c.map(order) if c.name == "method" else c)
    cols = ["method", "sigma2", "acc_mean", "acc_std", "n_seeds", "paper", "delta",
            "acc_bias_conflicting_mean", "acc_bias_conflicting_std", "scale", "paper_comparable"]
    summary = summary[cols].reset_index(drop=True)
    write_text(out.csv, summary.to_csv(index=False, float_format="%.6g"))

    caption = (f"Colored MNIST, test accuracy, {cells_caption(summary['n_seeds'], summary['paper'])} ({scale} scale). "
               f"Paper: {paper['table']}." + (f" Paper values {note}." if note else ""))
    col_fmt = lambda c: f"σ²={c:.3f}"  # noqa: E731
    write_tables(pivot_cells(summary, "method", "sigma2", "acc", rows, col_fmt=col_fmt), caption,
                 "tab:colored_mnist", out.md, out.tex, out.html,
                 latex_wide=pivot_cells(summary, "method", "sigma2", "acc", rows, latex=True, col_fmt=col_fmt))
    line_figure(summary, "sigma2", "acc_mean", "acc_std", "method", rows, "colour variance σ²",
                "test accuracy", f"Colored MNIST ({scale} scale); dashed: paper"
                + ("\n(paper: authors' data; ours: own colours, not directly comparable)" if note else ""),
                [out.png, out.pdf], paper_curves=paper["values"])
    return summary
