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


def joined_runs(xs, grid=()) -> list[list[float]]:
    """The distinct values of ``xs``, sorted, cut into stretches that a line may join: two neighbours are joined
    only where no value of ``grid`` (the grid the paper or the config draws from, e.g. its σ² or shares) lies
    between them, so that no line crosses an x that was not run."""
    xs = sorted({float(v) for v in xs})
    grid = sorted({float(g) for g in grid})
    out: list[list[float]] = []
    for v in xs:
        if out and not any(out[-1][-1] + 1e-9 < g < v - 1e-9 for g in grid):
            out[-1].append(v)
        else:
            out.append([v])
    return out


def method_offsets(xs, order: list[str], fraction: float = 0.3, spacing: float | None = None) -> dict[str, float]:
    """Small x offsets, one per method, so that lines with equal values stay visible side by side: together
    they span ``fraction`` of the spacing, the smallest gap between two x values or ``spacing`` (the grid the
    reader sees, e.g. the paper's share step) where that is smaller, so that no method is drawn nearer another x
    of the grid than its own."""
    import numpy as np

    ux = np.unique(np.asarray(xs, dtype=float))
    gap = float(np.diff(ux).min()) if len(ux) > 1 else 1.0
    gap = min(gap, spacing) if spacing else gap
    n = len(order)
    return {name: (i - (n - 1) / 2) * gap * fraction / max(n, 1) for i, name in enumerate(order)}


def _plot_stretches(ax, xs, ys, grid, **style) -> None:
    """Markers at every (x, y); a line only through the stretches ``joined_runs`` allows."""
    import numpy as np

    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    line = {k: v for k, v in style.items() if k not in ("marker", "ms", "label")}
    if "marker" in style:
        ax.plot(xs, ys, ls="none", **{k: v for k, v in style.items() if k not in ("ls", "lw")})
    for stretch in joined_runs(xs, grid):
        if len(stretch) > 1:
            keep = np.isin(xs, stretch)
            ax.plot(xs[keep], ys[keep], **line)


def seeds_figure(runs: pd.DataFrame, x: str, y: str, hue: str, order: list[str], xlabel: str,
                 panels: dict[str, str], title: str, outputs: list[str | os.PathLike],
                 legend_labels: dict[str, str] | None = None, grid=(), spacing: float | None = None,
                 ylabel: str = "accuracy", references: dict[str, dict] | None = None,
                 reference_label: str = "paper") -> None:
    """One panel per column of ``runs`` named in ``panels`` (column -> panel title): per method, the mean over
    seeds as markers with its own marker and line style, joined by a line only between x values adjacent in
    ``grid`` (no line crosses an x that was not run), and every seed's value as a small dot, all shifted by a small
    per-method x offset (a fraction of ``spacing``) so that methods with equal values do not hide each other.
    y in [0, 1]. ``references`` (method -> {x: value}): values of another source, dashed with open stars, in the
    method's colour. ``legend_labels`` (method -> legend text) replaces a method's name in the legend, which sits
    outside the panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    palette = dict(zip(order, sns.color_palette("tab10", len(order))))
    offsets = method_offsets(runs[x], order, spacing=spacing)
    width = 6.4 * len(panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(width + 2.6, 4.4), squeeze=False, sharey=True)
    handles = []
    for ax, (column, panel_title) in zip(axes[0], panels.items()):
        for i, name in enumerate(order):
            d = runs[runs[hue] == name]
            style = {"color": palette[name], "marker": MARKERS[i % len(MARKERS)], "ms": 5,
                     "ls": LINESTYLES[i % len(LINESTYLES)], "lw": 1.4}
            if ax is axes[0][0] and not d.empty:
                handles.append(plt.Line2D([], [], **style, label=(legend_labels or {}).get(name, name)))
            if d.empty:
                continue
            ax.scatter(d[x] + offsets[name], d[column], color=palette[name], s=9, alpha=0.45, lw=0)
            mean = d.groupby(x)[column].mean().sort_index()
            _plot_stretches(ax, mean.index + offsets[name], mean.values, [g + offsets[name] for g in grid], **style)
        for name, values in (references or {}).items():
            if name in palette and values:
                xs = sorted(values, key=float)
                ax.plot([float(v) for v in xs], [values[v] for v in xs], color=palette[name], ls="--", lw=1,
                        marker="*", ms=10, mfc="none", gid="reference")
        ax.set_xlabel(xlabel)
        ax.set_title(panel_title, fontsize=10)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    if references:
        handles.append(plt.Line2D([], [], color="grey", ls="--", lw=1, marker="*", ms=10, mfc="none",
                                  label=reference_label))
    axes[0][0].set_ylabel(ylabel)
    right = width / (width + 2.6)
    fig.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(right, 0.5), frameon=False,
               title="markers: mean over seeds\ndots: seeds", title_fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, right, 1))
    save_figure(fig, outputs)
    plt.close(fig)


def line_figure(summary: pd.DataFrame, x: str, y_mean: str, y_std: str, hue: str, order: list[str],
                xlabel: str, ylabel: str, title: str, outputs: list[str | os.PathLike],
                paper: str | None = "paper", paper_curves: dict[str, dict] | None = None, grid=()) -> None:
    """Per ``hue``, the mean ± std at every x run (markers with error bars, shifted slightly per hue so that equal
    values stay visible), joined by a line only between x values adjacent in the grid (``grid`` and every x of
    ``paper_curves``: no line crosses an x that was not run); the
    paper's values dashed: from ``paper_curves`` (hue -> {x: value}, every x the paper has, also those this run
    did not train) where given, else from the ``paper`` column. The legend sits outside the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import seaborn as sns

    palette = dict(zip(order, sns.color_palette("tab10", len(order))))
    grid = {float(g) for g in grid} | {float(v) for c in (paper_curves or {}).values() for v in c}
    steps = np.diff(sorted(grid | set(summary[x].astype(float))))
    offsets = method_offsets(summary[x], order, spacing=float(steps.min()) if len(steps) else None)
    fig, ax = plt.subplots(figsize=(8.2, 4.2))
    for name in order:
        d = summary[summary[hue] == name].sort_values(x)
        if d.empty:
            continue
        xs = d[x] + offsets[name]
        ax.errorbar(xs, d[y_mean], yerr=d[y_std].fillna(0), color=palette[name], marker="o", ms=4,
                    capsize=3, ls="none", label=name)
        _plot_stretches(ax, xs, d[y_mean], [g + offsets[name] for g in grid], color=palette[name], lw=1.5)
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
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, frameon=False,
              title="markers: mean ± std\n(solid lines only between\nneighbouring values run)", title_fontsize=7)
    fig.tight_layout()
    save_figure(fig, outputs)
    plt.close(fig)
