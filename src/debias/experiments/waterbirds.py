"""Waterbirds (paper 002, Table 1): prepare, train, aggregate (called by the rules' scripts).

- prepare: the release folder of ``waterbirds.source`` (or the embedded mini folder) decoded once
  (``debias.data.waterbirds.prepare``) into ``data.pt`` + ``recipe.json`` (sha256, group counts).
- train: one row (a config ``hparams`` entry; for ``fisher_flat`` one ε percentile of the sweep) for one or
  several seeds, through ``runner.train_cell``: images whole on the device as uint8, every split evaluated per
  epoch as configured, selection by the row's ``select`` rules (W1/W7), the average weighted by the training
  split's group counts (W8). Every run also records the last-layer Fisher traces of its result model on the
  training split (``train_traces``: the ERM traces-by-group figure reads them).
- aggregate: the table (Avg train-weighted, plain accuracy, Worst; mean ± std over seeds; the paper's value and
  the difference) and the per-group test accuracy figure; ``traces_figure``: the ERM traces by group.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch

from debias.data import waterbirds as wb
from debias.devices import resolve_device
from debias.io import read_json, write_text
from debias import tasks
from debias.runner import RunOutputs, data_hashes, train_cell
from debias.tasks.waterbirds import train_group_weights

log = logging.getLogger(__name__)
GROUP_NAMES = wb.GROUP_NAMES
MINORITY, MAJORITY = (1, 2), (0, 3)  # landbird on water, waterbird on land vs the aligned groups
RULE_LABELS = {"last": "last epoch", "val_average": "best val avg", "val_worst_group": "best val worst"}
METRICS = {  # table column -> test metric
    "Avg (train-weighted)": "weighted_group_accuracy",
    "Accuracy": "accuracy",
    "Worst": "worst_group_accuracy",
}
PAPER_COLUMNS = {"Avg (train-weighted)": "avg", "Worst": "worst"}
NOT_COMPARABLE = {
    "mini": "not directly comparable: mini scale (digits pasted on drawn land / water textures, a few hundred "
            "images, a small ResNet from scratch, a short schedule)",
    "full": None,
    "custom": "not directly comparable: a custom protocol (it differs from config/config.yaml; the run's Snakemake "
              "log names the keys)",
}


# -- prepare ------------------------------------------------------------------------------------------------


def prepare(section: dict[str, Any], data_out: str, recipe_out: str, threads: int = 1) -> dict[str, Any]:
    folder = wb.metadata_file(section["root"], section["source"]).parent
    expected = None if section["source"] == "embedded" else wb.PUBLISHED_COUNTS  # the mini counts are its own
    img = section["image"]
    recipe = wb.prepare(folder, data_out, recipe_out, img["resize"], img["crop"], threads, expected, progress=False)
    log.info("prepared %s: group counts %s", data_out, recipe["counts"])
    return recipe


# -- train --------------------------------------------------------------------------------------------------


def train(*, hparams, model, train_cfg, row: str, epsilon_percentile: float | None, seeds, data: str,
          metrics, models, states, device, weights_file: str | None = None) -> None:
    """Train ``row`` (with ``epsilon_percentile`` replacing its own, for the fisher_flat sweep) for every seed;
    ``weights_file``: the pretrained file ``model.weights`` names (debias.data.pretrained), None from scratch."""
    from debias.methods.fisher import split_traces

    dev = resolve_device(device)
    task = tasks.get("waterbirds")
    splits = task.load({"data": data}, dev, seed=0)
    hp = {**hparams, "autocast": train_cfg.get("autocast", True)}
    variant = {}
    if epsilon_percentile is not None:
        hp["epsilon_percentile"] = epsilon_percentile
        variant = {"epsilon_percentile": epsilon_percentile}
    weights = train_group_weights(splits)
    bs = train_cfg.get("eval_batch_size", 1000)

    def traces(method, run):
        t = split_traces(method.modules["f"], method.modules["g"], splits["train"], "last_layer", bs,
                         channels_last=train_cfg.get("channels_last", False)).float().cpu()
        return {"train_traces": {"rule": hp.get("select", ["last"])[0], "trace": "last_layer",
                                 "values": [float(f"{v:.6g}") for v in t.tolist()],
                                 "group": splits["train"]["group"].cpu().tolist()}}

    runs = [RunOutputs(seed=int(s), metrics=Path(mo), model=Path(md), state=Path(st))
            for s, mo, md, st in zip(seeds, metrics, models, states, strict=True)]
    train_cell(experiment="waterbirds", variant=variant, row=row, hparams=hp, train_cfg=train_cfg, splits=splits,
               make_backbone=lambda: task.backbone(model, splits, weights_file), model_cfg=model, runs=runs,
               data_sha256=data_hashes({"data": data}), device=dev, group_names=task.group_names, progress=False,
               group_weights=weights, extra_record=traces, task=task)


# -- aggregate ----------------------------------------------------------------------------------------------


def row_label(row: str, epsilon_percentile, rule: str) -> str:
    eps = f" ε=p{epsilon_percentile:g}" if epsilon_percentile is not None else ""
    return f"{row}{eps} ({RULE_LABELS.get(rule, rule)})"


def collect(metric_files: list[str]):
    """One line per (run, selection rule): the table row it belongs to and its test metrics in %."""
    import pandas as pd

    lines = []
    for path in metric_files:
        rec = read_json(path)
        pct = rec["variant"].get("epsilon_percentile")
        for rule, sel in rec["selections"].items():
            test = sel["metrics"]["test"]
            line = {"row": row_label(rec["method"], pct, rule), "method": rec["method"],
                    "epsilon_percentile": pct, "selection": rule, "seed": rec["seed"],
                    "selected_epoch": sel["epoch"], "epochs": rec["hparams"]["epochs"]}
            line.update({col: 100.0 * test[key] for col, key in METRICS.items()})
            line.update({f"test_acc_{name}": 100.0 * test[f"acc_{name}"] for name in GROUP_NAMES.values()})
            lines.append(line)
    return pd.DataFrame(lines)


def collapsed_note(summary) -> str:
    """A caption sentence on the rows whose test worst group is 0 % on every seed (empty if none): their model is
    confidently wrong on a whole group, and validation cannot tell their epochs apart."""
    worst = summary[(summary["column"] == "Worst") & (summary["mean"] == 0) & (summary["std"].fillna(0) == 0)]
    if worst.empty:
        return ""
    rows = ", ".join(worst["row"])
    return (f" {rows}: 0 % on the worst group for every seed; where the validation worst group is 0 % at every "
            "epoch too, the earliest candidate epoch is selected and the row's Avg and Accuracy are arbitrary "
            "(docs/waterbirds.md explains the fisher_flat ε = p50 collapse at mini: the method's behaviour, not a bug).")


def summary_table(runs, paper: dict[str, Any], scale: str):
    """Tidy summary: one line per (table row, column) with mean, std, n over seeds, the paper's value and the
    difference, and the mean selected epoch."""
    import pandas as pd

    note = NOT_COMPARABLE[scale]
    out = []
    for label, d in runs.groupby("row", sort=False):
        first = d.iloc[0]
        key = f"{first['method']}/{first['selection']}"
        values = paper.get("values", {}).get(key, {})
        for col in METRICS:
            p = values.get(PAPER_COLUMNS.get(col), math.nan)
            p = math.nan if p is None else float(p)
            mean, std = d[col].mean(), d[col].std(ddof=1) if len(d) > 1 else math.nan
            out.append({"row": label, "method": first["method"],
                        "epsilon_percentile": first["epsilon_percentile"], "selection": first["selection"],
                        "column": col, "mean": mean, "std": std, "n_seeds": len(d), "paper": p,
                        "delta": mean - p, "selected_epoch_mean": d["selected_epoch"].mean(),
                        "epochs": int(first["epochs"]), "scale": scale, "paper_comparable": note is None})
    return pd.DataFrame(out)


def wide_cells(summary, latex: bool = False):
    from debias.tables import fmt_cell

    cells = summary.assign(cell=[fmt_cell(m, s, n, p, digits=2, latex=latex) for m, s, n, p in
                                 zip(summary["mean"], summary["std"], summary["n_seeds"], summary["paper"])])
    wide = cells.pivot(index="row", columns="column", values="cell")
    wide = wide.reindex(index=list(dict.fromkeys(summary["row"])), columns=list(METRICS))
    epochs = summary.groupby("row", sort=False).agg(sel=("selected_epoch_mean", "first"), ep=("epochs", "first"))
    wide["selected epoch (mean)"] = [f"{epochs.loc[r, 'sel']:.1f} / {epochs.loc[r, 'ep']}" for r in wide.index]
    wide.index.name = "method (selection)"  # to_latex writes the row labels' ε as LaTeX
    return wide.fillna("–")


def order_rows(runs, rows: list[str]):
    """Runs sorted by the config's row order, then ε percentile, then the row's selection rules in order."""
    rank = {r: i for i, r in enumerate(rows)}
    runs = runs.assign(_r=runs["method"].map(rank), _e=runs["epsilon_percentile"].fillna(-1),
                       _s=runs.groupby("method")["selection"].transform(pd_codes))
    return runs.sort_values(["_r", "_e", "_s", "seed"], kind="stable").drop(columns=["_r", "_e", "_s"])


def pd_codes(s):
    """Position of each value among the distinct values of ``s`` in order of first appearance."""
    first = {v: i for i, v in enumerate(dict.fromkeys(s))}
    return s.map(first)


def aggregate(metric_files: list[str], paper_file: str, rows: list[str], scale: str, out) -> Any:
    import yaml

    runs = order_rows(collect(metric_files), rows)
    paper = yaml.safe_load(Path(paper_file).read_text())["waterbirds"]
    summary = summary_table(runs, paper, scale)
    write_text(out.csv, summary.to_csv(index=False, float_format="%.6g"))
    note = NOT_COMPARABLE[scale]
    from debias.tables import cells_caption, write_tables

    caption = (f"Waterbirds ({scale} scale), test accuracy (%), {cells_caption(summary['n_seeds'], summary['paper'])}. "
               "Avg = group accuracies weighted by the training split's group sizes (the paper's 'Avg'); "
               "Accuracy = plain test accuracy; Worst = lowest group accuracy. Each row names its model-selection "
               f"rule. Paper: {paper['table']}." + (f" Paper values {note}." if note else "")
               + collapsed_note(summary))
    write_tables(wide_cells(summary), caption, "tab:waterbirds", out.md, out.tex, out.html,
                 latex_wide=wide_cells(summary, latex=True))
    group_figure(runs, scale, [out.png, out.pdf])
    return summary


def group_figure(runs, scale: str, outputs) -> None:
    """Per-group test accuracy (mean ± std over seeds) of every table row; the error bars clipped to [0, 100]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import seaborn as sns

    from debias.plots import save_figure

    labels = list(dict.fromkeys(runs["row"]))
    groups = list(GROUP_NAMES.values())
    counts = runs.groupby("row", sort=False)
    colors = sns.color_palette("tab10", len(labels))
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    width = 0.8 / len(labels)
    x = np.arange(len(groups) + 1)
    for i, label in enumerate(labels):
        d = counts.get_group(label)
        cols = [f"test_acc_{g}" for g in groups] + ["Worst"]
        mean = d[cols].mean().to_numpy()
        std = d[cols].std(ddof=1).fillna(0).to_numpy() if len(d) > 1 else np.zeros(len(cols))
        at = x + (i - (len(labels) - 1) / 2) * width
        # an accuracy lies in [0, 100]: so do the bars
        err = [np.clip(np.minimum(std, mean), 0, None), np.clip(np.minimum(std, 100 - mean), 0, None)]
        ax.bar(at, mean, width, yerr=err, capsize=2, color=colors[i], label=f"{label} (n={len(d)})")
        for xi, m in zip(at, mean):
            if m < 1:  # a bar this low cannot be seen: its value is written where it would stand
                ax.text(xi, 1, f"{m:.0f}", ha="center", va="bottom", fontsize=7, color=colors[i], fontweight="bold")
    ax.set_xticks(x, [g.replace("_", "\non ") for g in groups] + ["worst\ngroup"], fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"Waterbirds ({scale} scale): test accuracy per group, mean ± std over seeds\n"
                 "(error bars clipped to 0–100 %)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.tight_layout()
    save_figure(fig, outputs)
    plt.close(fig)


# -- the paper's premise: traces by group ---------------------------------------------------------------------


def trace_stats(metric_files: list[str]):
    """Per group, over every seed's training samples: n, mean, median, quartiles of the last-layer traces of
    the runs' result models; and whether every minority group's median exceeds every majority group's."""
    import numpy as np
    import pandas as pd

    values, groups = [], []
    for path in metric_files:
        tr = read_json(path)["train_traces"]
        values += tr["values"]
        groups += tr["group"]
    values, groups = np.asarray(values, dtype=np.float64), np.asarray(groups)
    lines = []
    for g, name in GROUP_NAMES.items():
        v = values[groups == g]
        lines.append({"group": name, "minority": g in MINORITY, "n": int(v.size), "mean": float(v.mean()),
                      "median": float(np.median(v)), "q25": float(np.quantile(v, 0.25)),
                      "q75": float(np.quantile(v, 0.75))})
    stats = pd.DataFrame(lines)
    holds = bool(stats.loc[stats["minority"], "median"].min() > stats.loc[~stats["minority"], "median"].max())
    return stats, holds, values, groups


def traces_table(stats, scale: str, out) -> None:
    """The per-group trace statistics as Markdown, LaTeX and HTML (``out.md``, ``tex``, ``html``)."""
    import pandas as pd

    from debias.tables import write_tables

    first = stats.iloc[0]
    wide = pd.DataFrame({"group": [g.replace("_", " on ") + (" (minority)" if m else "") for g, m in
                               zip(stats["group"], stats["minority"])],
                     "n": stats["n"].astype(int).astype(str),
                     **{col: [f"{v:.3g}" for v in stats[col]] for col in ("median", "q25", "q75", "mean")}})
    wide = wide.set_index("group")
    verdict = "holds" if first["premise_holds"] else "does not hold"
    caption = (f"Waterbirds ({scale} scale): per-sample Fisher traces (last layer) of the {first['rows']} model "
               f"({RULE_LABELS.get(first['selection'], first['selection'])}) on the training split, by group, pooled "
               f"over {first['seeds']} seed(s): median, quartiles and mean. The paper's premise (every minority "
               f"group's median above every majority group's) {verdict} in this run. The paper prints no values.")
    write_tables(wide, caption, "tab:waterbirds_traces", out.md, out.tex, out.html)


def traces_figure(metric_files: list[str], scale: str, out) -> bool:
    """Box plots of the ERM model's per-sample traces on the training split by group (log scale), the verdict
    on the paper's premise in the title; the per-group numbers to a CSV. Returns the verdict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from debias.plots import save_figure

    stats, holds, values, groups = trace_stats(metric_files)
    rec = read_json(metric_files[0])
    stats["rows"] = rec["method"]
    stats["selection"] = rec["train_traces"]["rule"]
    stats["seeds"] = len(metric_files)
    stats["premise_holds"] = holds
    write_text(out.csv, stats.to_csv(index=False, float_format="%.6g"))
    traces_table(stats, scale, out)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    floor = max(values[values > 0].min(), 1e-8) if (values > 0).any() else 1e-8
    data = [np.clip(values[groups == g], floor, None) for g in GROUP_NAMES]
    ax.boxplot(data, showfliers=True, flierprops={"markersize": 2, "alpha": 0.4})
    ax.set_xticks(range(1, 5), [f"{n.replace('_', ' on ')}\n(n={s}{', minority' if m else ''})" for n, s, m in
                                zip(GROUP_NAMES.values(), stats["n"], stats["minority"])], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("per-sample Fisher trace, last layer\n(log; 0 shown at the smallest positive value)")
    ratio = stats.loc[stats["minority"], "median"].min() / max(stats.loc[~stats["minority"], "median"].max(), 1e-30)
    verdict = ("holds: every minority group's median trace exceeds every majority group's" if holds else
               "does not hold: some majority group's median trace is at least a minority group's")
    ax.set_title(f"Waterbirds ({scale}): {rec['method']} model ({RULE_LABELS.get(rec['train_traces']['rule'])}), "
                 f"training split, {len(metric_files)} seed(s)\npremise {verdict}\n"
                 f"(smallest minority median / largest majority median = {ratio:.2f})", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, [out.png, out.pdf])
    plt.close(fig)
    return holds
