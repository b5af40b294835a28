"""Every output says what it shows (issue 29): table captions computed from the cells, figures that draw only what
was run and within the valid range, a caption per FairFace figure, report captions whose sentences stay apart."""

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import jinja2
import pandas as pd
import pytest
import yaml
from conftest import ROOT

import debias.plots

NAN = float("nan")


@pytest.fixture
def drawn(monkeypatch):
    """Every figure the code under test saves, kept for inspection instead of written."""
    figures = []
    monkeypatch.setattr(debias.plots, "save_figure", lambda fig, outputs: figures.append(fig))
    return figures


def test_cells_caption_says_only_what_the_cells_hold():
    from debias.tables import cells_caption

    one = cells_caption(pd.Series([1, 1, 1]), pd.Series([NAN, NAN, NAN]))
    assert "±" not in one and "[" not in one and "one seed" in one
    two = cells_caption(pd.Series([2, 2]), pd.Series([0.5, 0.6]))
    assert two == "mean ± std over 2 seeds [paper value, difference]"
    some = cells_caption(pd.Series([2, 3]), pd.Series([0.5, NAN]), reference="3rd-party ref.")
    assert some == "mean ± std over 2–3 seeds [3rd-party ref., difference] where it has one"
    mixed = cells_caption(pd.Series([1, 2]), pd.Series([NAN, NAN]))
    assert mixed.startswith("mean ± std over 1–2 seeds") and "one seed: the value alone" in mixed
    assert "[" not in mixed


def write_json(path, rec):
    path.write_text(json.dumps(rec))
    return str(path)


def test_coco_map_caption_promises_no_std_or_paper_value_its_cells_lack(tmp_path):
    from debias.experiments.coco_tables import table_map

    paper = yaml.safe_load((ROOT / "config/paper_values.yaml").read_text())["coco_map"]
    files = [write_json(tmp_path / f"{aug}.json", {
        "method": aug, "seed": 0, "variant": {"lr": 0.003, "split": "none", "pairing": "random"},
        "metrics": {"test": {"mAP": 0.3}, "val": {"mAP": 0.3}}, "selected": {"epoch": 1}, "images_per_s": 1.0,
        "device_name": "cpu"}) for aug in ("nomix", "mixup")]
    out = SimpleNamespace(**{k: str(tmp_path / f"map.{k}") for k in ("csv", "md", "tex", "html")})
    table_map(files, paper, ["nomix", "mixup"], "mini", out)
    caption = Path(out.md).read_text().split("\n\n")[0]
    assert "±" not in caption and "[paper value" not in caption and "one seed" in caption
    assert "No paper value" in caption  # the paper's values are at other learning rates: said
    assert "<table>" in Path(out.html).read_text() and "one seed" in Path(out.html).read_text()


def l2rw_runs(tmp_path, shares, seeds=(0, 1)):
    files = []
    for method in ("baseline", "l2rw"):
        for share in shares:
            for seed in seeds:
                m = {"accuracy": 0.9 - 0.1 * seed, "acc_digit4": 0.8, "acc_digit9": 1.0}
                files.append(write_json(tmp_path / f"{method}_{share}_{seed}.json", {
                    "method": method, "seed": seed, "variant": {"share": share},
                    "metrics": {"train": m, "test": m}}))
    return files


def l2rw_out(tmp_path):
    return SimpleNamespace(**{k: str(tmp_path / f"l2rw.{k}") for k in ("csv", "md", "tex", "html", "png", "pdf")})


def test_l2rw_caption_announces_the_reference_column_only_where_a_cell_has_one(tmp_path, drawn):
    from debias.experiments.reweighting import aggregate_mnist

    out = l2rw_out(tmp_path)
    aggregate_mnist(l2rw_runs(tmp_path, (0.9, 0.99)), str(ROOT / "config/paper_values.yaml"), ["baseline", "l2rw"],
                    "mini", out)
    caption = Path(out.md).read_text().split("\n\n")[0]
    assert "[3rd-party ref." not in caption and "p = 0.995" in caption and "mean ± std over 2 seeds" in caption
    with_ref = tmp_path / "ref"
    with_ref.mkdir()
    out = l2rw_out(with_ref)
    aggregate_mnist(l2rw_runs(with_ref, (0.99, 0.995)), str(ROOT / "config/paper_values.yaml"),
                    ["baseline", "l2rw"], "mini", out)
    md = Path(out.md).read_text()
    assert "[3rd-party ref., difference] where it has one" in md.split("\n\n")[0] and "[0.059, " in md


def test_l2rw_figure_draws_error_per_share_seeds_and_the_reference(tmp_path, drawn):
    from debias.experiments.reweighting import aggregate_mnist

    out = l2rw_out(tmp_path)
    aggregate_mnist(l2rw_runs(tmp_path, (0.9, 0.99)), str(ROOT / "config/paper_values.yaml"), ["baseline", "l2rw"],
                    "mini", out)
    (fig,) = drawn
    ax = fig.axes[0]
    dots = [c for c in ax.collections if len(c.get_offsets())]
    assert sum(len(c.get_offsets()) for c in dots) == 2 * 2 * 2  # methods x shares x seeds
    ref = [ln for ln in ax.lines if "3rd-party" in ln.get_label()] + [
        ln for ln in ax.lines if ln.get_marker() == "*" and len(ln.get_xdata())]
    assert any(0.995 in list(ln.get_xdata()) for ln in ref)  # the reference values at p = 0.995
    assert ax.get_ylabel() == "test error"
    joined = [ln for ln in ax.lines if len(ln.get_xdata()) > 1 and ln.get_linestyle() not in ("None", "--")]
    assert not joined  # 0.9 and 0.99 are not adjacent in Ren et al.'s grid (0.95, 0.98 between): no line


def solid_spans(ax):
    """(x0, x1) of every segment of every drawn line that is neither dashed nor a bare marker."""
    spans = []
    for ln in ax.lines:
        xs = [float(v) for v in ln.get_xdata()]
        if ln.get_linestyle() in ("None", "--", " ", "") or len(xs) < 2:
            continue
        spans += list(zip(xs[:-1], xs[1:]))
    return spans


def legend_clear_of_axes(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()  # the figure was closed after saving
    fig.draw(renderer)
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    assert legends
    for leg in legends:
        box = leg.get_window_extent(renderer)
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(renderer)), "the legend covers a panel"


def test_colored_mnist_figure_joins_only_sigma2_adjacent_in_the_grid(drawn):
    from debias.plots import line_figure

    curves = {"a": {s: 0.5 for s in (0.02, 0.025, 0.03, 0.035, 0.04, 0.045, 0.05)}}
    summary = pd.DataFrame({"method": ["a"] * 3, "sigma2": [0.02, 0.025, 0.05], "acc_mean": [0.3, 0.35, 0.5],
                            "acc_std": [0.01, 0.01, 0.01], "paper": [NAN] * 3})
    line_figure(summary, "sigma2", "acc_mean", "acc_std", "method", ["a"], "σ²", "acc", "t", [],
                paper_curves=curves)
    (fig,) = drawn
    spans = solid_spans(fig.axes[0])
    assert (0.02, 0.025) in spans and not [s for s in spans if s[1] - s[0] > 0.0051], spans
    xs = sorted({float(x) for ln in fig.axes[0].lines if ln.get_marker() not in ("None", "", None)
                 for x in ln.get_xdata()})
    assert [round(v, 3) for v in xs] == [0.02, 0.025, 0.05]  # every run value has its marker (dodged a little)
    legend_clear_of_axes(fig)


def test_waterbirds_error_bars_stay_within_0_and_100(drawn):
    from debias.experiments import waterbirds as exp

    groups = list(exp.GROUP_NAMES.values())
    runs = pd.DataFrame([{"row": "a", **{f"test_acc_{g}": acc for g, acc in zip(groups, accs)}, "Worst": min(accs)}
                         for accs in ((100, 2, 50, 99), (90, 60, 52, 100))])
    exp.group_figure(runs, "mini", [])
    (fig,) = drawn
    ends = [y for c in fig.axes[0].containers if getattr(c, "errorbar", None)
            for seg in c.errorbar.lines[2][0].get_segments() for _, y in seg]
    assert ends and min(ends) >= 0 and max(ends) <= 100, ends
    assert "clipped" in fig.axes[0].get_title()


def fairface_runs(tmp_path, methods, shares):
    files = []
    for method in methods:
        for share in shares:
            for seed in (0, 1):
                m = {"accuracy": 0.5 + 0.1 * seed, "acc_poc": 0.2, "acc_white": 0.9}
                files.append(write_json(tmp_path / f"{method}_{share}_{seed}.json", {
                    "method": method, "seed": seed, "variant": {"share": share},
                    "metrics": {"train": m, "test": m}}))
    return files


METHODS = ["baseline", "proportion", "resample", "hardmining", "random", "l2rw"]


def fairface_out(tmp_path):
    from debias.experiments.reweighting_figures import figure_stems

    return SimpleNamespace(csv=str(tmp_path / "ff.csv"), md=str(tmp_path / "ff.md"), tex=str(tmp_path / "ff.tex"),
                           html=str(tmp_path / "ff.html"),
                           figures=[str(tmp_path / f"{s}.{e}") for s in figure_stems() for e in ("png", "pdf")])


def test_fairface_dodge_is_a_small_fraction_of_the_share_spacing_and_the_legend_hides_no_dot(tmp_path, drawn):
    from debias.experiments.reweighting import aggregate_fairface

    out = fairface_out(tmp_path)
    aggregate_fairface(fairface_runs(tmp_path, METHODS, (0.6, 0.8, 0.95, 0.99)), METHODS, "mini", out)
    fig = drawn[[Path(p).stem for p in out.figures if p.endswith(".png")].index("fairface_test_acc_91-99")]
    shift = [abs(float(x) - s) for ln in fig.axes[0].lines for x in ln.get_xdata()
             for s in [min((0.95, 0.99), key=lambda v: abs(v - float(x)))]]
    assert shift and max(shift) < 0.25 * 0.01, max(shift)  # the paper's 91-99 grid steps by 0.01
    for fig in drawn:
        legend_clear_of_axes(fig)


def test_fairface_table_and_one_caption_per_figure(tmp_path, drawn):
    from debias.experiments.reweighting import aggregate_fairface

    out = fairface_out(tmp_path)
    aggregate_fairface(fairface_runs(tmp_path, ["baseline", "l2rw"], (0.6, 0.95)), ["baseline", "l2rw"], "mini", out)
    md = Path(out.md).read_text()
    assert md.startswith("FairFace") and "| l2rw, test |" in md and "White 0.90" in md and "±" in md
    assert r"\begin{table}" in Path(out.tex).read_text() and "<table>" in Path(out.html).read_text()
    captions = {Path(p).stem: Path(p).with_suffix(".rst").read_text() for p in out.figures if p.endswith(".png")}
    assert len(set(captions.values())) == 8
    for stem, text in captions.items():
        kind, split, tag = re.match(r"fairface_(train|test)_(acc|per_class)_(.*)", stem).group(2, 1, 3)
        assert f"{split} split" in text and ("0.50–0.90" if tag == "60-90" else "0.91–0.99") in text, stem
        assert ("per class" in text) == (kind == "per_class"), stem
        assert "curves are not drawn" in text  # the paper prints no values; its text says what it can
        assert ("about 50 %" in text) == (split == "test"), stem


def test_coco_figure_draws_the_majority_rate_and_marks_constant_predictors(drawn):
    from debias.experiments.coco_figures import figure_leakage

    rows = []
    for split, normal in (("gamma1", 70.1), ("gamma2", 64.0), ("none", 82.1)):
        rows.append({"attacker": "unbalanced", "pairing": "random", "split": split, "majority": 70.1,
                     "dataset_mean": 60.0, "dataset_paper": NAN, "nomix_mean": normal,
                     "nomix_std": 0.0 if normal == 70.1 else 1.0, "nomix_delta": normal - 60.0, "nomix_paper": NAN})
    figure_leakage(pd.DataFrame(rows), ["nomix"], "mini", [])
    (fig,) = drawn
    ref = [ln for ln in fig.axes[0].lines if "majority" in ln.get_label()]
    assert ref and set(map(float, ref[0].get_ydata())) == {70.1}
    marked = [c for ax in fig.axes for c in ax.collections if "at the majority rate" in str(c.get_label())]
    assert marked and [tuple(p) for p in marked[0].get_offsets()] == [(0.0, 70.1)]


def caption_configs():
    full = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    mini = {**full, **yaml.safe_load((ROOT / "config/mini.yaml").read_text())}
    return {"full": full, "mini": mini}


@pytest.mark.parametrize("scale", ["full", "mini"])
def test_report_captions_keep_a_space_between_sentences(scale):
    """Snakemake renders a caption with trim_blocks: an `{% endif %}` at a line's end eats the newline, and the
    next sentence sticks to the last ("values.Mini scale")."""
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)  # as snakemake.report renders captions
    cfg = caption_configs()[scale]
    cfg["coco"].setdefault("f1_matched", {"attackers": ["unbalanced"]})
    stuck = {}
    for path in sorted((ROOT / "workflow/report").glob("*.rst")):
        text = env.from_string(path.read_text()).render(snakemake=SimpleNamespace(config=cfg))
        stuck[path.name] = re.findall(r"\w{2,}[.;:)]+(?:\*\*)?[A-Z]\w*", text)
    assert not {name: found for name, found in stuck.items() if found}


def test_report_summary_says_what_the_readme_says():
    text = (ROOT / "workflow/report/workflow.rst").read_text()
    assert "in small" not in text and "only in part" in text


def test_the_waterbirds_caption_names_rows_at_zero_worst_group_on_every_seed():
    import pandas as pd

    from debias.experiments.waterbirds import collapsed_note

    rows = [("erm (last epoch)", "Worst", 16.8, 13.2), ("fisher_flat ε=p50 (best val worst)", "Worst", 0.0, 0.0),
            ("fisher_flat ε=p50 (best val worst)", "Avg (train-weighted)", 59.0, 50.9),
            ("fisher_flat ε=p75 (best val worst)", "Worst", 0.0, 4.0)]  # one seed at 0, one not: not collapsed
    summary = pd.DataFrame(rows, columns=["row", "column", "mean", "std"])
    note = collapsed_note(summary)
    assert note.startswith(" fisher_flat ε=p50 (best val worst): 0 % on the worst group for every seed")
    assert "p75" not in note and "erm" not in note.split(":")[0]
    assert collapsed_note(summary[summary["row"] == "erm (last epoch)"]) == ""
