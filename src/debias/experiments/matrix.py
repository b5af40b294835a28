"""The method x dataset matrix: every registered method on every dataset whose batch fields and label kind it can use.

None of the four papers makes this comparison: each runs its own few methods on its own dataset. Here each dataset
keeps one schedule for every method (``matrix.datasets.<d>.schedule``: optimiser, lr, epochs, batch size, selection),
each method keeps one set of its own hyperparameters for every dataset (``matrix.hparams.<method>``), and a method
takes of the schedule the keys it knows (mixup's Adam-free ``optimizer: sgd`` included). Two adapters:

- ``val_from_test``: colored MNIST has no validation split (the paper selects no model, and one cut from its training
  set would hold bias-aligned images only): that fraction of its test images (random colours), the same for every
  method and seed, becomes the validation split, and test accuracy is over the rest;
- ``meta_per_group``: l2rw's clean meta set is a small group-balanced subset of the validation split (that many
  images of every group), never the whole split model selection reads.

A method that cannot run on a dataset (a field or label kind the dataset lacks) gets a record ``status: n/a: <why>``
instead of runs: the decision needs the method classes (torch), which the driver of a cluster run may lack, so it is
made by the job, not when the DAG is built.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import torch

from debias import methods, tasks
from debias.devices import resolve_device
from debias.io import read_json, write_json
from debias.runner import Cell, RunOutputs, data_hashes, train_cells

log = logging.getLogger(__name__)
ADAPTER_SEED = 20240  # the held-out validation and the meta subset are drawn once, alike for every method and seed


# -- what runs --------------------------------------------------------------------------------------------------
def method_hparams(method: str, schedule: dict[str, Any], own: dict[str, Any]) -> tuple[type, dict[str, Any]]:
    """(class, hyperparameters) of ``method`` on a dataset: the keys of the dataset's ``schedule`` that the method
    takes (its required and optional keys, and the run keys), then its own entry ``own`` over them."""
    cls = methods.get(method)
    takes = set(methods.RUN_KEYS) | set(cls.hparams) | set(cls.optional_hparams)
    hp = {k: v for k, v in schedule.items() if k in takes}
    hp.update(own)
    return cls, hp


def adapted_task(task: tasks.Task, entry: dict[str, Any]) -> tasks.Task:
    """The task as the matrix's adapters leave it (a validation split held out of test, a meta split)."""
    fields = {s: tuple(f) for s, f in task.fields.items()}
    if entry.get("val_from_test"):
        fields["val"] = fields["test"]
    if entry.get("meta_per_group") and "val" in fields:
        fields["meta"] = fields["val"]
    if fields == task.fields:
        return task
    out = copy.copy(task)
    out.fields = fields
    if entry.get("val_from_test"):
        out.selection_rules = tuple(dict.fromkeys((*task.selection_rules, "val_average", "val_worst_group")))
    return out


def adapt_splits(splits: dict, entry: dict[str, Any]) -> dict:
    """``val_from_test`` and ``meta_per_group`` applied to one run's splits (``adapted_task``)."""
    out = dict(splits)
    gen = torch.Generator().manual_seed(ADAPTER_SEED)
    if entry.get("val_from_test"):
        test = out["test"]
        n = test["y"].shape[0]
        order = torch.randperm(n, generator=gen).to(test["y"].device)
        k = int(round(entry["val_from_test"] * n))
        out["val"], out["test"] = (_rows(test, order[:k]), _rows(test, order[k:]))
    if entry.get("meta_per_group") and "val" in out:
        val = out["val"]
        group = val["group"].cpu()
        order = torch.randperm(group.numel(), generator=gen)
        picked = torch.cat([order[group[order] == g][: entry["meta_per_group"]] for g in group.unique()])
        out["meta"] = _rows(val, picked.sort().values.to(val["y"].device))
    return out


def _rows(split: dict[str, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
    rows = {k: v[idx] for k, v in split.items()}
    if "index" in rows:
        rows["index"] = torch.arange(idx.numel(), device=idx.device)
    return rows


def cell_status(task_name: str, method: str, entry: dict[str, Any], own: dict[str, Any]) -> str:
    """``ok``, or ``n/a: <why>`` where the method cannot run on the dataset."""
    cls, hp = method_hparams(method, entry["schedule"], own)
    why = tasks.mismatch(cls, hp, adapted_task(tasks.get(task_name), entry))
    if why is None and hp.get("epochs") is not None and hp["epochs"] < cls.min_epochs(hp):
        why = (f"the dataset's {hp['epochs']} epochs leave {method} no epoch after its warm-up to select (it needs "
               f"{cls.min_epochs(hp)})")
    return "ok" if why is None else f"n/a: {why}"


# -- training ---------------------------------------------------------------------------------------------------
def train(*, dataset: str, task_name: str, methods_: list[str], seeds: list[int], inputs: dict[str, str],
          entry: dict[str, Any], hparams: dict[str, dict[str, Any]], model: dict[str, Any], train_cfg: dict[str, Any],
          image: dict[str, Any] | None, metrics: list[str], states: list[str], device: str,
          weights_file: str | None = None) -> None:
    """Train every method of ``methods_`` for every seed on ``dataset`` (the matrix's column; ``task_name`` its
    registered task), ``metrics`` and ``states`` listed method-major, seed-minor; a method the dataset cannot feed
    gets its ``n/a`` record for each seed instead."""
    dev = resolve_device(device)
    task = adapted_task(tasks.get(task_name), entry)
    data_sha256 = data_hashes({k: v for k, v in inputs.items()})
    cache: dict[int, dict] = {}  # one entry, or one per seed where the splits are drawn per seed (small data)

    def splits_of(seed: int) -> dict:
        key = seed if task.splits_per_seed else 0
        if key not in cache:
            cache[key] = adapt_splits(task.load(inputs, dev, seed), entry)
        return cache[key]

    n = len(seeds)
    task_cfg = {"train": train_cfg, **({"image": image} if image else {})}
    for i, method in enumerate(methods_):
        own = hparams.get(method, {})
        status = cell_status(task_name, method, entry, own)
        paths = list(zip(seeds, metrics[i * n:(i + 1) * n], states[i * n:(i + 1) * n]))
        if status != "ok":
            log.info("%s on %s: %s", method, dataset, status)
            for seed, metrics_out, _ in paths:
                write_json(metrics_out, {"experiment": "matrix", "dataset": dataset, "task": task_name,
                                         "method": method, "seed": int(seed), "status": status})
            continue
        _, hp = method_hparams(method, entry["schedule"], own)
        runs = [RunOutputs(seed=int(s), metrics=Path(mo), model=Path(mo).with_name("model.pt"), state=Path(st))
                for s, mo, st in paths]
        cells = [Cell({}, splits_of, runs, data_sha256)]
        records = train_cells(experiment=f"matrix/{dataset}", cells=cells, row=method, hparams=hp,
                              train_cfg=train_cfg, make_backbone=lambda: task.backbone(model, splits_of(seeds[0]),
                                                                                       weights_file),
                              model_cfg=model, device=dev, group_names=task.group_names, progress=False,
                              task=task, task_cfg=task_cfg)
        for record, run in zip(records, runs):
            write_json(run.metrics, {**record, "dataset": dataset, "task": task_name, "status": "ok"})
            run.model.unlink(missing_ok=True)  # the matrix keeps numbers, not weights


# -- the table --------------------------------------------------------------------------------------------------
def metrics_of(task_name: str) -> tuple[str, str]:
    """(the worst-group metric, the average metric) of a dataset's test split."""
    return tasks.get(task_name).worst_and_average


def title_of(dataset: str) -> str:
    """A column's title: its registered task's (a column named otherwise keeps its own name)."""
    return tasks.get(dataset).title if dataset in tasks.names() else dataset


def task_of(tidy, dataset: str) -> str:
    return str(tidy.loc[tidy["dataset"] == dataset, "task"].iloc[0])


def collect(metric_files: list[str]):
    """One row per (method, dataset, metric): mean, std, n_seeds and status (tidy)."""
    import pandas as pd

    rows = []
    for path in metric_files:
        rec = read_json(path)
        base = {"method": rec["method"], "dataset": rec["dataset"], "task": rec["task"], "seed": rec["seed"],
                "status": rec["status"]}
        if rec["status"] != "ok":
            rows += [{**base, "metric": m, "value": float("nan")} for m in metrics_of(rec["task"])]
            continue
        test = rec["metrics"]["test"]
        rows += [{**base, "metric": m, "value": 100.0 * float(test[m])} for m in metrics_of(rec["task"])]
    runs = pd.DataFrame(rows)
    tidy = (runs.groupby(["method", "dataset", "task", "metric", "status"], sort=False)["value"]
            .agg(mean="mean", std="std", n_seeds="count").reset_index())
    tidy.loc[tidy["status"] != "ok", "n_seeds"] = 0
    return tidy[["method", "dataset", "task", "metric", "mean", "std", "n_seeds", "status"]]


def _cell_text(rows, latex: bool = False) -> str:
    """'worst / average' of one (method, dataset): mean ± std over seeds, or the n/a mark."""
    from debias.tables import fixed

    first = rows.iloc[0]
    if first["status"] != "ok":
        return "n/a"
    pm = r" $\pm$ " if latex else " ± "
    parts = []
    for _, r in rows.iterrows():
        parts.append(fixed(r["mean"], 1) + ("" if r["n_seeds"] < 2 else pm + fixed(r["std"], 1)))
    return " / ".join(parts)


def wide_table(tidy, method_order: list[str], dataset_order: list[str], latex: bool = False):
    import pandas as pd

    wide = pd.DataFrame(index=pd.Index(method_order, name="method"))
    for d in dataset_order:
        wide[title_of(d)] = [_cell_text(tidy[(tidy["method"] == m) & (tidy["dataset"] == d)], latex)
                       if ((tidy["method"] == m) & (tidy["dataset"] == d)).any() else "not run" for m in method_order]
    return wide


def caption(tidy, dataset_order: list[str], scale: str) -> tuple[str, list[str]]:
    seeds = sorted({int(n) for n in tidy.loc[tidy["status"] == "ok", "n_seeds"]})
    metrics = "; ".join(f"{title_of(d)}: {' / '.join(metrics_of(task_of(tidy, d)))}" for d in dataset_order)
    text = (f"Every method on every dataset ({scale} scale): test worst-group / average, % (mean ± std over "
            f"{'/'.join(map(str, seeds)) or 0} seeds; {metrics}). One schedule per dataset for every method, one set of "
            "hyperparameters per method for every dataset, selection on validation. None of the four papers has "
            "this table: no cell is compared with a paper's.")
    reasons = (tidy[tidy["status"] != "ok"].drop_duplicates(["method", "dataset"])
               .sort_values(["dataset", "method"]))
    notes = [f"n/a: {r.method} on {title_of(r.dataset)}: {r.status[len('n/a: '):]}."
             for r in reasons.itertuples()]
    return text, notes


def aggregate(metric_files: list[str], method_order: list[str], dataset_order: list[str], scale: str, out) -> None:
    """method_matrix.{csv,md,tex,html} and the heatmap (worst-group metric, the average beside it)."""
    from debias.io import write_text
    from debias.tables import write_tables

    tidy = collect(metric_files)
    write_text(out.csv, tidy.to_csv(index=False, float_format="%.4f"))
    text, notes = caption(tidy, dataset_order, scale)
    write_tables(wide_table(tidy, method_order, dataset_order), text, "tab:method_matrix", out.md, out.tex, out.html,
                 notes, latex_wide=wide_table(tidy, method_order, dataset_order, latex=True))
    heatmap(tidy, method_order, dataset_order, scale, [out.png, out.pdf])


def heatmap(tidy, method_order: list[str], dataset_order: list[str], scale: str, outputs: list[str]) -> None:
    """Two panels, methods x datasets: the worst-group metric (left) and the average (right); n/a cells hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from debias.plots import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(2.0 + 1.5 * len(dataset_order) * 2, 0.9 + 0.36 * len(method_order)),
                             sharey=True)
    for panel, (ax, which) in enumerate(zip(axes, ("worst-group", "average"))):
        values = np.full((len(method_order), len(dataset_order)), np.nan)
        for j, d in enumerate(dataset_order):
            metric = metrics_of(task_of(tidy, d))[panel]
            for i, m in enumerate(method_order):
                sel = tidy[(tidy["method"] == m) & (tidy["dataset"] == d) & (tidy["metric"] == metric)]
                if len(sel) and sel.iloc[0]["status"] == "ok":
                    values[i, j] = sel.iloc[0]["mean"]
        # each column coloured on its own scale (datasets differ in difficulty): the colour ranks methods within it
        lo, hi = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        scaled = (values - lo) / np.where(hi > lo, hi - lo, 1.0)
        ax.imshow(np.ma.masked_invalid(scaled), cmap="viridis", aspect="auto", vmin=0, vmax=1)
        for i in range(len(method_order)):
            for j in range(len(dataset_order)):
                if np.isnan(values[i, j]):
                    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", color="0.7", lw=0))
                    ax.text(j, i, "n/a", ha="center", va="center", fontsize=7, color="0.4")
                else:
                    ax.text(j, i, f"{values[i, j]:.1f}", ha="center", va="center", fontsize=7,
                            color="white" if scaled[i, j] < 0.5 else "black")
        ax.set_xticks(range(len(dataset_order)),
                      [f"{title_of(d)}\n{metrics_of(task_of(tidy, d))[panel]}" for d in dataset_order], fontsize=7)
        ax.set_yticks(range(len(method_order)), method_order, fontsize=8)
        ax.set_title(f"test {which}, % (colour: rank within the column)", fontsize=9)
    fig.suptitle(f"Every method on every dataset ({scale} scale; mean over seeds)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, outputs)
