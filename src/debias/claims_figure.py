"""The claims figure: one row per claim, in its table's unit: the 95 % interval, the measured value, the paper's
value with its ± band, and zero."""

from __future__ import annotations

import math

import pandas as pd

from debias.plots import save_figure

COLORS = {"holds": "#1a7f37", "holds, smaller": "#4d9a5f", "holds, larger": "#4d9a5f", "does not hold": "#c62828",
          "inconclusive": "#8a8a8a", "not run": "#bbbbbb"}


def _finite(*xs) -> list[float]:
    return [float(x) for x in xs if x is not None and not pd.isna(x) and math.isfinite(float(x))]


def _limits(r) -> tuple[float, float]:
    xs = _finite(r.measured, r.ci_low, r.ci_high, 0.0)
    if r.paper_value is not None and not pd.isna(r.paper_value):
        xs += [r.paper_value - r.tolerance, r.paper_value + r.tolerance]
    lo, hi = min(xs), max(xs)
    pad = 0.08 * (hi - lo) or 1.0
    return lo - pad, hi + pad


def figure(claims: pd.DataFrame, scale: str, outputs) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(claims)
    height = 0.62 * n + 1.2  # inches: a row per claim, then the title and the legend
    fig, axes = plt.subplots(n, 1, figsize=(10, height), squeeze=False)
    for ax, r in zip(axes[:, 0], claims.itertuples(index=False)):
        color = COLORS[r.verdict]
        ax.set_yticks([])
        ax.tick_params(axis="x", labelsize=6, length=2, pad=1)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        ax.text(-0.01, 0.5, f"{r.paper} {r.claim}", transform=ax.transAxes, ha="right", va="center", fontsize=7)
        ax.text(1.01, 0.5, r.verdict, transform=ax.transAxes, ha="left", va="center", fontsize=7, color=color,
                fontweight="bold")
        if r.verdict == "not run":
            ax.set_xticks([])
            ax.spines["bottom"].set_visible(False)
            ax.text(0.5, 0.5, str(r.note)[:110], transform=ax.transAxes, ha="center", va="center", fontsize=6,
                    color=color)
            continue
        lo, hi = _limits(r)
        ax.set_xlim(lo, hi)
        ax.set_ylim(-1, 1)
        ax.axvline(0.0, color="black", lw=0.8, ls="--")
        if r.paper_value is not None and not pd.isna(r.paper_value):
            ax.axvspan(r.paper_value - r.tolerance, r.paper_value + r.tolerance, color="#f0b429", alpha=0.3, lw=0)
            ax.plot([r.paper_value], [0], marker="D", color="#b7791f", ms=5, ls="none")
        if not pd.isna(r.ci_low):
            ax.plot([r.ci_low, r.ci_high], [0, 0], color=color, lw=2.5, solid_capstyle="butt")
        ax.plot([r.measured], [0], marker="o", color=color, ms=5, ls="none")
    handles = [plt.Line2D([], [], color="#444444", lw=2.5, marker="o", label="measured, 95 % interval"),
               plt.Line2D([], [], color="#b7791f", marker="D", ls="none", label="paper's value"),
               plt.matplotlib.patches.Patch(color="#f0b429", alpha=0.3, label="paper ± tolerance"),
               plt.Line2D([], [], color="black", ls="--", lw=0.8, label="zero")]
    fig.suptitle(f"Which claims reproduce ({scale} scale): each row in its own table's unit", fontsize=9,
                 y=1 - 0.12 / height, va="top")
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.42 / height), ncol=4, fontsize=7,
               frameon=False)
    fig.subplots_adjust(left=0.3, right=0.86, top=1 - 0.95 / height, bottom=0.3 / height, hspace=1.1)
    save_figure(fig, outputs)
    plt.close(fig)
