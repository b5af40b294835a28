"""Figures: one line per method, mean ± std over seeds, the paper's values dashed in the same colour."""

from __future__ import annotations

import os

import pandas as pd

from debias.io import atomic_path


def line_figure(summary: pd.DataFrame, x: str, y_mean: str, y_std: str, hue: str, order: list[str],
                xlabel: str, ylabel: str, title: str, outputs: list[str | os.PathLike],
                paper: str | None = "paper", band: bool = False) -> None:
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
        if band:
            ax.plot(d[x], d[y_mean], color=palette[name], marker="o", ms=3, label=name)
            sd = d[y_std].fillna(0)
            ax.fill_between(d[x], d[y_mean] - sd, d[y_mean] + sd, color=palette[name], alpha=0.15, lw=0)
        else:
            ax.errorbar(d[x], d[y_mean], yerr=d[y_std].fillna(0), color=palette[name], marker="o", ms=4,
                        capsize=3, label=name)
        if paper and d[paper].notna().any():
            ax.plot(d[x], d[paper], color=palette[name], ls="--", lw=1, alpha=0.8)
    if paper and summary[paper].notna().any():
        ax.plot([], [], color="grey", ls="--", lw=1, label="paper (dashed)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    for out in outputs:
        fmt = str(out).rsplit(".", 1)[-1]
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150)
    plt.close(fig)
