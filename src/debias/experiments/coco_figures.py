"""COCO gender leakage (paper 000), the figures of rule coco_tables: leakage and bias amplification against the
training split (from Table 3's tidy frame), and Wang's F1-matched leakage curves with the models drawn on them."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from debias import plots  # noqa: E402
from debias.experiments.coco_keys import AUG_NAMES, SPLIT_NAMES, f1_curve_key  # noqa: E402
from debias.experiments.coco_tables import collect_leakage, read_f1_curve  # noqa: E402


def figure_leakage(tidy, augs: list[str], scale: str, outputs: list[str]) -> None:
    """Model leakage and bias amplification vs split (γ = 1, 2, 3, no balance), unbalanced attacker, random
    pairs; one line per augmentation, dataset leakage in black. The test majority rate, the leakage an attacker gets
    from a model that predicts the same for every image, is drawn as a reference (and, on the right, the Δ such a
    model gets); a model at it (mean within 0.05 points, std at most 0.05) is ringed: its "amplification" is the
    majority rate minus the dataset leakage, not learnt bias."""
    d = tidy[(tidy["attacker"] == "unbalanced") & (tidy["pairing"] == tidy["pairing"].iloc[0])]
    xs_order = [s for s in ("gamma1", "gamma2", "gamma3", "none") if s in set(d["split"])]
    d = d.set_index("split").loc[xs_order]
    x = np.arange(len(xs_order))
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.0))
    majority = d["majority"].to_numpy(dtype=float)
    axes[0].plot(x, majority, color="grey", ls=":", lw=1.5, label="majority rate: a constant\npredictor's leakage")
    axes[1].plot(x, majority - d["dataset_mean"].to_numpy(dtype=float), color="grey", ls=":", lw=1.5,
                 label="Δ of a constant predictor")
    axes[0].plot(x, d["dataset_mean"], "k-o", label="dataset")
    if d["dataset_paper"].notna().any():
        axes[0].plot(x, d["dataset_paper"], "k--", lw=1)
    constant = [[], []]  # (x, leakage) and (x, Δ) of every model at the majority rate
    for aug in augs:
        bars = axes[0].errorbar(x, d[f"{aug}_mean"], yerr=d[f"{aug}_std"].fillna(0), marker="o", capsize=3,
                                label=AUG_NAMES.get(aug, aug))
        color = bars.lines[0].get_color()
        axes[1].plot(x, d[f"{aug}_delta"], marker="o", color=color, label=AUG_NAMES.get(aug, aug))
        if d[f"{aug}_paper"].notna().any():
            axes[0].plot(x, d[f"{aug}_paper"], ls="--", lw=1, color=color)
            axes[1].plot(x, d[f"{aug}_paper"] - d["dataset_paper"], ls="--", lw=1, color=color)
        mean, std = d[f"{aug}_mean"].to_numpy(dtype=float), d[f"{aug}_std"].fillna(0).to_numpy(dtype=float)
        at = (np.abs(mean - majority) <= 0.05) & (std <= 0.05)
        constant[0] += [(xi, m) for xi, m in zip(x[at], mean[at])]
        constant[1] += [(xi, v) for xi, v in zip(x[at], d[f"{aug}_delta"].to_numpy(dtype=float)[at])]
    for ax, points in zip(axes, constant):
        if points:
            ax.scatter(*zip(*points), s=160, facecolors="none", edgecolors="k", lw=1.2, zorder=4,
                       label="model at the majority rate")
    axes[1].axhline(0, color="grey", lw=0.8)
    for ax, ylabel in zip(axes, ("leakage (%)", "bias amplification Δ (points)")):
        ax.set_xticks(x, [SPLIT_NAMES[s] for s in xs_order])
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    extra = [(h, lb) for h, lb in zip(*axes[1].get_legend_handles_labels()) if lb.startswith("Δ of")]
    fig.legend([h for h, _ in [*zip(handles, labels), *extra]], [lb for _, lb in [*zip(handles, labels), *extra]],
               fontsize=8, loc="center left", bbox_to_anchor=(0.76, 0.5), frameon=False)
    fig.suptitle(f"COCO gender leakage vs training split, unbalanced attacker ({scale} scale; dashed: paper;\n"
                 "ringed: a model that predicts the same for every image, whose Δ is not learnt bias)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.76, 1))
    plots.save_figure(fig, outputs)
    plt.close(fig)


def figure_f1_curves(curve_files: dict[str, str], model_files: list[tuple[dict, str]], model_metrics: list[str],
                     splits: list[str], scale: str, outputs: list[str]) -> None:
    """Wang's F1-matched leakage, drawn: per attacker, dataset leakage of flipped ground truth against the flipped
    labels' val macro-F1 (a line per curve), and every Table 3 model at its own val macro-F1 and leakage (a point,
    in its split's colour); a model left of its curve's F1 range has no F1-matched value."""
    raw = collect_leakage({}, model_files, model_metrics)
    with_curve = {m for m in ("unbalanced", "balanced") for s in splits if f1_curve_key(m, s) in curve_files}
    modes = [m for m in ("unbalanced", "balanced") if m in set(raw["attacker"]) & with_curve]
    colors = {s: f"C{i}" for i, s in enumerate(("none", "gamma3", "gamma2", "gamma1"))}
    markers = {"nomix": "o", "mixup": "s", "cutmix": "^"}
    fig, axes = plt.subplots(1, len(modes), figsize=(4.4 * len(modes) + 2.6, 3.8), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        for split in splits:
            key = f1_curve_key(mode, split)
            if key not in curve_files:
                continue
            c = read_f1_curve(curve_files[key])
            order = np.argsort(c["f1"])
            color = "k" if mode == "balanced" else colors.get(split, "grey")
            label = f"flipped ground truth, {mode if mode == 'balanced' else SPLIT_NAMES[split]}"
            ax.plot(np.asarray(c["f1"])[order], np.asarray(c["leakage"])[order], "-", color=color, lw=1.2,
                    marker=".", label=label)
            if mode == "balanced":
                break
        for _, m in raw[raw["attacker"] == mode].iterrows():
            ax.scatter(m["val_f1"], np.mean(m["scores"]), color=colors.get(m["split"], "grey"),
                       marker=markers.get(m["what"], "x"), s=22, zorder=3)
        ax.set_xlabel("val macro-F1 of the object labels (threshold 0.5)")
        ax.set_ylabel("leakage (%)")
        ax.set_title(f"{mode} attacker", fontsize=9)
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=colors[s], marker="o", ls="", label=f"models, {SPLIT_NAMES[s]}")
               for s in splits if s in colors]
    handles += [plt.Line2D([], [], color="grey", marker=mk, ls="", label=AUG_NAMES.get(a, a))
                for a, mk in markers.items() if a in set(raw["what"])]
    lines = [h for ax in axes[0] for h in ax.get_legend_handles_labels()[0]]
    fig.legend(handles=lines + handles, fontsize=7, loc="center right")
    fig.suptitle(f"COCO: dataset leakage of flipped ground truth vs label F1 (lines) and the models (points), "
                 f"{scale} scale", fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.76, 1))
    plots.save_figure(fig, outputs)
    plt.close(fig)
