"""Figures: one line per method (mean over seeds) with the spread shown honestly; paper values dashed."""

from __future__ import annotations

import os

import pandas as pd

from debias.io import atomic_path

MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1))]


def save_figure(fig, outputs) -> None:
    """``fig`` to every path of ``outputs`` in the format its suffix names, each written atomically."""
    for out in outputs:
        fmt = str(out).rsplit(".", 1)[-1]
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150)


def method_offsets(xs, order: list[str], fraction: float = 0.3) -> dict[str, float]:
    """Small x offsets, one per method, so that lines with equal values stay visible side by side: together
    they span ``fraction`` of the smallest gap between two x values."""
    import numpy as np

    ux = np.unique(np.asarray(xs, dtype=float))
    gap = float(np.diff(ux).min()) if len(ux) > 1 else 1.0
    n = len(order)
    return {name: (i - (n - 1) / 2) * gap * fraction / max(n, 1) for i, name in enumerate(order)}


def seeds_figure(runs: pd.DataFrame, x: str, y: str, hue: str, order: list[str], xlabel: str,
                 panels: dict[str, str], title: str, outputs: list[str | os.PathLike],
                 legend_labels: dict[str, str] | None = None) -> None:
    """One panel per column of ``runs`` named in ``panels`` (column -> panel title): per method, the mean over
    seeds as a line with its own marker and line style, and every seed's value as a small dot, both shifted by
    a small per-method x offset so that methods with equal values do not hide each other. y in [0, 1].
    ``legend_labels`` (method -> legend text) replaces a method's name in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    palette = dict(zip(order, sns.color_palette("tab10", len(order))))
    offsets = method_offsets(runs[x], order)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.4), squeeze=False, sharey=True)
    for ax, (column, panel_title) in zip(axes[0], panels.items()):
        for i, name in enumerate(order):
            d = runs[runs[hue] == name]
            if d.empty:
                continue
            xs = d[x] + offsets[name]
            ax.scatter(xs, d[column], color=palette[name], s=9, alpha=0.45, lw=0)
            mean = d.groupby(x)[column].mean().sort_index()
            ax.plot(mean.index + offsets[name], mean.values, color=palette[name], marker=MARKERS[i % len(MARKERS)],
                    ms=5, ls=LINESTYLES[i % len(LINESTYLES)], lw=1.4, label=(legend_labels or {}).get(name, name))
        ax.set_xlabel(xlabel)
        ax.set_title(panel_title, fontsize=10)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy")
    axes[0][0].legend(fontsize=8, loc="best", title="line: mean over seeds; dots: seeds", title_fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, outputs)
    plt.close(fig)


def line_figure(summary: pd.DataFrame, x: str, y_mean: str, y_std: str, hue: str, order: list[str],
                xlabel: str, ylabel: str, title: str, outputs: list[str | os.PathLike],
                paper: str | None = "paper", paper_curves: dict[str, dict] | None = None) -> None:
    """One line (mean ± std) per ``hue``; the paper's values dashed: from ``paper_curves`` (hue -> {x: value},
    every x the paper has, also those this run did not train) where given, else from the ``paper`` column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    palette = dict(zip(order, sns.color_palette("tab10", len(order))))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name in order:
        d = summary[summary[hue] == name].sort_values(x)
        if d.empty:
            continue
        ax.errorbar(d[x], d[y_mean], yerr=d[y_std].fillna(0), color=palette[name], marker="o", ms=4,
                    capsize=3, label=name)
        if paper_curves and paper_curves.get(name):
            xs = sorted(paper_curves[name], key=float)
            ax.plot([float(v) for v in xs], [paper_curves[name][v] for v in xs], color=palette[name], ls="--",
                    lw=1, alpha=0.8)
        elif paper and d[paper].notna().any():
            ax.plot(d[x], d[paper], color=palette[name], ls="--", lw=1, alpha=0.8)
    if paper and (summary[paper].notna().any() or paper_curves):
        ax.plot([], [], color="grey", ls="--", lw=1, label="paper (dashed)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    save_figure(fig, outputs)
    plt.close(fig)
