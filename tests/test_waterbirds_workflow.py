"""Waterbirds workflow: the DAG of both configs (row x seed x ε percentile as GPU jobs at full scale, one job per row
at mini scale, job_costs finding their benchmarks), missing data with downloads off stopping before any job, and
the table and the traces verdict against hand-computed values on fabricated metrics.json files."""

import json
import math
import re
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from conftest import ROOT, full_data_missing_downloads_off, job_counts, snakemake, write_config

RUN = r"runs/waterbirds/(\w+)/(default|eps_pct=[\d.]+)/seed=(\d+)/metrics\.json"


def train_blocks(stdout: str) -> list[str]:
    return [b for b in stdout.split("\nrule ")[1:] if b.startswith("waterbirds_train:")]


def expected_runs(cfg: dict) -> set[tuple[str, str, str]]:
    """Every (row, variant, seed) of the table, written out independently of waterbirds_common.smk."""
    out = set()
    for row in cfg["methods"]:
        hp = cfg["hparams"][row]
        sweep = hp.get("method", row) == "fisher_flat" and "epsilon" not in hp and cfg.get("epsilon_percentiles")
        variants = [f"eps_pct={p:g}" for p in cfg["epsilon_percentiles"]] if sweep else ["default"]
        out |= {(row, v, str(s)) for v in variants for s in cfg["seeds"]}
    return out


def test_full_config_dry_run_lists_row_x_percentile_x_seed_as_gpu_jobs():
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())["waterbirds"]
    proc = snakemake("waterbirds", "job_costs", "-n", "--forceall", "--cores", 8, "--resources", "gpu=2", check=True)
    blocks = train_blocks(proc.stdout)
    runs = [tuple(m) for b in blocks for m in re.findall(RUN, b)]
    assert len(blocks) == len(runs) == 15  # erm 3 + groupdro 3 + fisher_flat 3 percentiles x 3 seeds
    assert set(runs) == expected_runs(cfg)
    assert all("gpu=1" in b for b in blocks)
    assert all(re.search(r"benchmarks/jobs/waterbirds/\w+/[\w=.]+/seed=\d\.tsv", b) for b in blocks)
    counts = job_counts(proc.stdout)
    assert counts["waterbirds_prepare"] == 1 and counts["waterbirds_table"] == 1 and counts["waterbirds_traces"] == 1
    # data/waterbirds is not there and the full config allows downloads: one download job before the prepare job
    assert counts.get("waterbirds_download") == 1 and "waterbirds_v1.0/metadata.csv" in proc.stdout


def test_mini_trains_each_row_and_percentile_in_one_job_for_every_seed():
    cfg = yaml.safe_load((ROOT / "config/mini.yaml").read_text())["waterbirds"]
    assert cfg["seeds_per_job"] == "all"
    # job_costs reads wb_bench_files(): a benchmark no job writes would fail the dry run (missing input)
    proc = snakemake("waterbirds", "job_costs", "-n", "--forceall", "--cores", 2, "--configfile", "config/mini.yaml",
                     check=True)
    blocks = train_blocks(proc.stdout)
    per_job = [set(re.findall(RUN, b)) for b in blocks]
    assert len(blocks) == 2 + len(cfg["epsilon_percentiles"])
    assert all(len({(r, v) for r, v, _ in job}) == 1 and len(job) == len(cfg["seeds"]) for job in per_job)
    assert set().union(*per_job) == expected_runs(cfg)
    assert all("all_seeds.tsv" in b and "gpu=" not in b for b in blocks)
    counts = job_counts(proc.stdout)
    assert counts["waterbirds_embedded"] == 1 and counts["waterbirds_prepare"] == 1
    assert "waterbirds_download" not in counts
    # the default target includes the Waterbirds outputs
    everything = snakemake("-n", "--forceall", "--cores", 2, "--configfile", "config/mini.yaml", check=True).stdout
    for out in ("tables/waterbirds.md", "figures/waterbirds_groups.png", "figures/waterbirds_traces.pdf"):
        assert out in everything


def test_missing_waterbirds_with_downloads_off_stops_before_any_job(tmp_path):
    def nowhere(section, missing):
        section["root"] = str(missing)

    out = full_data_missing_downloads_off(tmp_path, "waterbirds", nowhere)
    assert "config key waterbirds.root" in out and "nowhere/waterbirds_v1.0/metadata.csv" in out


@pytest.mark.parametrize("allow_download", [True, False])
def test_the_other_layout_s_release_on_disk_is_named_before_a_download(tmp_path, allow_download):
    from debias.config import missing_data

    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["allow_download"] = allow_download
    cfg["waterbirds"].update(root=str(tmp_path), source="wilds")
    (tmp_path / "waterbird_complete95_forest2water2").mkdir()
    (tmp_path / "waterbird_complete95_forest2water2/metadata.csv").write_text("img_id\n")
    out = [m for m in missing_data(cfg) if m.startswith("config key waterbirds.")]  # the data's, not the weights'
    assert len(out) == 1 and out[0].startswith("config key waterbirds.source: 'wilds' reads ")
    assert "waterbirds_v1.0/metadata.csv, which is missing, but the group_dro release is there" in out[0]
    assert "set waterbirds.source: group_dro to use it" in out[0]
    assert ("downloads the wilds release" in out[0]) == allow_download
    cfg["waterbirds"]["source"] = "group_dro"  # the release it names is there: nothing to say
    assert not [m for m in missing_data(cfg) if m.startswith("config key waterbirds.")]


def test_selection_by_val_without_per_epoch_evaluation_is_rejected(tmp_path):
    def mutate(cfg):
        cfg["waterbirds"]["train"]["eval_every"] = 0

    proc = snakemake("waterbirds", "-n", "--cores", 1, "--configfile", write_config(tmp_path, mutate))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config key waterbirds.hparams.groupdro.select: ['val_worst_group'] selects by validation" in out


# -- the table and the traces verdict on fabricated runs ----------------------------------------------------------

GROUPS = ("landbird_land", "landbird_water", "waterbird_land", "waterbird_water")


def fake_run(path, method, seed, selections, pct=None, traces=None):
    """A metrics.json as train_cell writes it; ``selections``: rule -> (epoch, weighted, accuracy, worst)."""
    sels = {}
    for rule, (epoch, weighted, acc, worst) in selections.items():
        test = {"weighted_group_accuracy": weighted, "accuracy": acc, "worst_group_accuracy": worst}
        test.update({f"acc_{g}": worst + 0.1 * i for i, g in enumerate(GROUPS)})
        sels[rule] = {"rule": rule, "epoch": epoch, "metrics": {"test": test}}
    rec = {"method": method, "seed": seed, "variant": {"epsilon_percentile": pct} if pct else {},
           "hparams": {"epochs": 10}, "selections": sels}
    if traces is not None:
        rec["train_traces"] = {"rule": "last", "values": traces[0], "group": traces[1]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))
    return str(path)


def test_table_against_hand_computed_cells(tmp_path):
    from debias.experiments.waterbirds import aggregate

    files = [
        fake_run(tmp_path / "e0.json", "erm", 0, {"last": (10, 0.90, 0.70, 0.10), "val_average": (4, 0.96, 0.80, 0.30)}),
        fake_run(tmp_path / "e1.json", "erm", 1, {"last": (10, 0.94, 0.74, 0.20), "val_average": (6, 0.98, 0.90, 0.50)}),
        fake_run(tmp_path / "f0.json", "fisher_flat", 0, {"val_worst_group": (3, 0.80, 0.85, 0.70)}, pct=75),
        fake_run(tmp_path / "f1.json", "fisher_flat", 1, {"val_worst_group": (5, 0.84, 0.87, 0.80)}, pct=75),
        fake_run(tmp_path / "g0.json", "groupdro", 0, {"val_worst_group": (7, 0.91, 0.92, 0.88)}),
    ]
    out = SimpleNamespace(**{k: str(tmp_path / f"t.{k}") for k in ("csv", "md", "tex", "html", "png", "pdf")})
    aggregate(files, str(ROOT / "config/paper_values.yaml"), ["erm", "groupdro", "fisher_flat"], "mini", out)
    csv = pd.read_csv(out.csv)
    # rows in config order (groupdro before fisher_flat), each row's selection rules in their order
    assert list(dict.fromkeys(csv["row"])) == ["erm (last epoch)", "erm (best val avg)", "groupdro (best val worst)",
                                                "fisher_flat ε=p75 (best val worst)"]
    cell = csv.set_index(["row", "column"])
    worst = cell.loc[("erm (last epoch)", "Worst")]
    assert worst["mean"] == pytest.approx(15.0) and worst["std"] == pytest.approx(math.sqrt(50.0))  # 10, 20
    assert worst["paper"] == 60.0 and worst["delta"] == pytest.approx(-45.0) and worst["n_seeds"] == 2
    avg = cell.loc[("erm (best val avg)", "Avg (train-weighted)")]
    assert avg["mean"] == pytest.approx(97.0) and math.isnan(avg["paper"])  # no paper value for this row
    assert avg["selected_epoch_mean"] == 5.0
    ff = cell.loc[("fisher_flat ε=p75 (best val worst)", "Avg (train-weighted)")]
    assert ff["mean"] == pytest.approx(82.0) and ff["paper"] == 91.94 and ff["delta"] == pytest.approx(-9.94)
    acc = cell.loc[("groupdro (best val worst)", "Accuracy")]
    assert acc["mean"] == pytest.approx(92.0) and math.isnan(acc["std"]) and math.isnan(acc["paper"])
    assert cell.loc[("groupdro (best val worst)", "Worst"), "paper"] == 86.0
    assert not csv["paper_comparable"].any()
    md = open(out.md).read()
    assert "| erm (last epoch) | 92.00 ± 2.83 [97.30, -5.30] | 72.00 ± 2.83 | 15.00 ± 7.07 [60.00, -45.00] |" in md
    assert "not directly comparable" in md and "88.00 (n=1) [86.00, +2.00]" in md
    tex = open(out.tex).read()
    assert r"fisher\_flat $\varepsilon$=p75 (best val worst) & 82.00 $\pm$ 2.83 [91.94, -9.94]" in tex
    assert "(\\%)" in tex and not re.search(r"(?<!\\)%", tex)  # no unescaped % (it would start a LaTeX comment)


def test_average_accuracy_is_weighted_by_the_training_split_s_group_sizes():
    """Train groups 6/1/1/2, test groups 1/4/4/1; test group accuracies 1, 1/2, 1/4, 0: the train-weighted
    average is (6·1 + 1·0.5 + 1·0.25 + 2·0) / 10 = 0.675 (the test-weighted one, = the plain accuracy, is 0.4)."""
    import torch

    from debias.experiments.waterbirds import train_group_weights
    from debias.metrics import classification_metrics

    def split(group):
        return {"group": torch.tensor(group), "y": torch.zeros(len(group), dtype=torch.long)}

    test = split([0, 1, 1, 1, 1, 2, 2, 2, 2, 3])
    splits = {"train": split([0] * 6 + [1] + [2] + [3] * 2), "val": split([0, 1, 2, 3] * 3), "test": test}
    weights = train_group_weights(splits)  # what train() hands train_cell as group_weights
    assert weights == {0: 6.0, 1: 1.0, 2: 1.0, 3: 2.0}
    pred = torch.tensor([0, 0, 0, 1, 1, 0, 1, 1, 1, 1])  # right: 1/1, 2/4, 1/4, 0/1
    m = classification_metrics(pred, test["y"], test["group"], group_weights=weights)
    assert abs(m["accuracy"] - 0.4) < 1e-12
    assert abs(m["weighted_group_accuracy"] - 0.675) < 1e-12


def test_traces_verdict_from_group_medians(tmp_path):
    from debias.experiments.waterbirds import trace_stats

    groups = [0, 0, 0, 1, 1, 2, 2, 3, 3, 3]
    holds = fake_run(tmp_path / "a.json", "erm", 0, {"last": (1, 0, 0, 0)},
                     traces=([0.1, 0.2, 0.3, 1.0, 2.0, 0.5, 0.9, 0.2, 0.4, 0.3], groups))
    stats, verdict, _, _ = trace_stats([holds])
    # medians by hand: g0 0.2, g1 1.5, g2 0.7, g3 0.3 -> minority min 0.7 > majority max 0.3
    assert stats["median"].tolist() == pytest.approx([0.2, 1.5, 0.7, 0.3]) and verdict
    assert stats["n"].tolist() == [3, 2, 2, 3] and stats["minority"].tolist() == [False, True, True, False]
    fails = fake_run(tmp_path / "b.json", "erm", 1, {"last": (1, 0, 0, 0)},
                     traces=([0.1, 0.2, 0.3, 1.0, 2.0, 0.1, 0.2, 0.2, 0.4, 0.3], groups))
    stats, verdict, _, _ = trace_stats([fails])  # g2 median 0.15 < g3's 0.3
    assert not verdict
    stats, verdict, _, _ = trace_stats([holds, fails])  # pooled over seeds: g2 0.35 > g0 0.2, g3 0.3
    assert stats["median"].tolist() == pytest.approx([0.2, 1.5, 0.35, 0.3]) and verdict
    # medians, not means: one large trace lifts g2's mean (1.01) above the majority's, not its median (0.02)
    skewed = fake_run(tmp_path / "c.json", "erm", 2, {"last": (1, 0, 0, 0)},
                      traces=([0.1, 0.2, 0.3, 1.0, 1.0, 1.0, 0.01, 0.02, 3.0, 0.2, 0.3, 0.4],
                              [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]))
    stats, verdict, _, _ = trace_stats([skewed])
    assert stats["mean"].tolist() == pytest.approx([0.2, 1.0, 1.01, 0.3]) and not verdict


@pytest.mark.slow
def test_mini_waterbirds_slice_builds_its_outputs_and_one_row_edit_reruns_only_that_row(tmp_path):
    from test_workflow import tiny_waterbirds

    path = write_config(tmp_path, tiny_waterbirds)
    snakemake("waterbirds", "--cores", 2, "--configfile", path, check=True)
    results = tmp_path / "results"
    for out in ("tables/waterbirds.csv", "tables/waterbirds.md", "tables/waterbirds.tex", "tables/waterbirds_traces.csv",
                "figures/waterbirds_groups.png", "figures/waterbirds_traces.pdf"):
        assert (results / out).stat().st_size > 0, out
    table = pd.read_csv(results / "tables/waterbirds.csv")
    assert len(table) == (3 + 1 + 1) * 3  # erm's three selections, groupdro, fisher_flat p50; three columns each
    rec = json.loads((results / "runs/waterbirds/erm/default/seed=0/metrics.json").read_text())
    assert list(rec["selections"]) == ["last", "val_average", "val_worst_group"] and rec["selected"]["rule"] == "last"
    assert rec["selections"]["val_worst_group"]["epoch"] in (1, 2) and len(rec["train_traces"]["values"]) > 0
    ff = json.loads((results / "runs/waterbirds/fisher_flat/eps_pct=50/seed=0/metrics.json").read_text())
    assert ff["selections"]["val_worst_group"]["epoch"] == 3  # epochs 1-2 are ERM's weights: never selected
    # edit the fisher_flat row only: its training job and the table rerun, not erm, groupdro or the traces figure
    cfg = yaml.safe_load(path.read_text())
    cfg["waterbirds"]["hparams"]["fisher_flat"]["dual_step_size"] = 0.5
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(cfg, sort_keys=True))  # another key order: no effect on its own
    proc = snakemake("waterbirds", "-n", "--cores", 2, "--configfile", edited, check=True)
    counts = job_counts(proc.stdout)
    assert counts["waterbirds_train"] == 1 and counts["waterbirds_table"] == 1
    assert re.findall(RUN, "".join(train_blocks(proc.stdout)))[0][0] == "fisher_flat"
    assert "waterbirds_traces" not in counts and "waterbirds_prepare" not in counts


def test_group_figure_writes_the_value_of_a_bar_too_low_to_see(monkeypatch):
    from debias import plots
    from debias.experiments import waterbirds as exp

    groups = list(exp.GROUP_NAMES.values())
    runs = pd.DataFrame([{"row": row, **{f"test_acc_{g}": acc for g, acc in zip(groups, accs)}, "Worst": min(accs)}
                         for row, accs in (("a", (90, 0.0, 0.4, 95)), ("a", (92, 0.0, 0.2, 97)),
                                           ("b", (80, 60, 70, 85)))])
    shown = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, outputs: shown.update(fig=fig))
    exp.group_figure(runs, "mini", [])
    texts = shown["fig"].axes[0].texts
    # row a: landbird on water (0), waterbird on land (0.3) and its worst group (0.1) are written; row b's bars show
    assert sorted(t.get_text() for t in texts) == ["0", "0", "0"]
    assert len({round(t.get_position()[0], 6) for t in texts}) == 3
