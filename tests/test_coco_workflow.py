"""COCO gender workflow: the full config's DAG has every cell of Tables 2 and 3 as a GPU job; missing data with
downloads off stops the run before any job; the paper values' Table 3 checks."""

import re

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, full_data_missing_downloads_off, job_counts, snakemake, write_config


def train_cells(stdout: str) -> dict[tuple, str]:
    cells = {}
    for block in stdout.split("\nrule ")[1:]:
        if not block.startswith("coco_train:"):
            continue
        m = re.search(r"runs/coco/split=(\w+)/(\w+)/pairing=(\w+)/lr=([\de.+-]+)/seed=\d+/metrics\.json", block)
        cells[m.groups()] = block
    return cells


def grid_cells(cfg: dict) -> set[tuple]:
    """Every training cell of Tables 2 and 3 for a coco section, written out independently of coco_cells()."""
    lr = lambda v: f"{v:.0e}"  # noqa: E731
    pair = lambda aug, p: "none" if aug == "nomix" else p  # noqa: E731
    table2 = {(cfg["table2_split"], aug, pair(aug, "random"), lr(v)) for v in cfg["lrs"]
              for aug in cfg["augmentations"]}
    table3 = {(s, aug, pair(aug, p), lr(cfg["table3_lr"])) for s in cfg["splits"] for aug in cfg["augmentations"]
              for p in cfg["pairings"]}
    return table2 | table3


def test_full_config_dry_run_lists_every_cell_of_tables_2_and_3_as_a_gpu_job():
    proc = snakemake("-n", "--forceall", "--cores", 8, "--resources", "gpu=2", "-p", "coco", check=True)
    cells = train_cells(proc.stdout)
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())["coco"]
    assert cfg["cells_per_job"] == 1
    # 26 jobs: Table 2's 9 and Table 3's 20 cells share the three lr 1e-3 no-balance random cells
    assert set(cells) == grid_cells(cfg) and len(cells) == 26
    assert all("gpu=1" in block for block in cells.values())
    leak = [b for b in proc.stdout.split("\nrule ")[1:] if b.startswith("coco_model_leakage:")]
    assert len(leak) == 20 * len(cfg["seeds"]) and all("gpu=" not in b for b in leak)  # one per model (cell, seed)


def test_mini_trains_every_cell_in_one_job_and_the_leakages_in_two_the_full_config_one_job_per_cell():
    mini = yaml.safe_load((ROOT / "config/mini.yaml").read_text())["coco"]
    assert mini["cells_per_job"] == "all"
    # job_costs reads coco_bench_files(): a benchmark no job writes would fail the dry run (missing input)
    proc = snakemake("coco", "job_costs", "-n", "--forceall", "--cores", 2, "--configfile", "config/mini.yaml",
                     check=True)
    counts = job_counts(proc.stdout)
    assert counts["coco_train"] == 1 and counts["coco_dataset_leakage"] == 1 and counts["coco_model_leakage"] == 1
    assert counts["coco_f1_leakage"] == 1
    block = next(b for b in proc.stdout.split("\nrule ")[1:] if b.startswith("coco_train:"))
    run = r"runs/coco/split=(\w+)/(\w+)/pairing=(\w+)/lr=([\de.+-]+)/seed=(\d+)/(metrics\.json|logits\.pt)"
    outputs = re.findall(run, block)
    cells = grid_cells(mini)
    assert len(cells) == 23  # Table 2's 2 mini lrs x 3 and Table 3's 20 share the three table3_lr random cells
    assert sorted(outputs) == sorted((*c, str(s), name) for c in cells for s in mini["seeds"]
                                     for name in ("metrics.json", "logits.pt"))
    assert "benchmarks/jobs/coco/all_cells.tsv" in block and "logs/coco/all_cells.log" in block
    # the full config (cells_per_job: 1): one job per cell, split and model, and job_costs finds their benchmarks
    counts = job_counts(snakemake("coco", "job_costs", "-n", "--forceall", "--cores", 8, "--resources", "gpu=2",
                                  check=True).stdout)
    n_seeds = len(yaml.safe_load((ROOT / "config/config.yaml").read_text())["coco"]["seeds"])
    assert counts["coco_train"] == 26 and counts["coco_dataset_leakage"] == 4
    assert counts["coco_model_leakage"] == 20 * n_seeds
    # F1-matched curves: the balanced attacker's only (Wang's), one curve for all splits (it draws from the full ones)
    assert counts["coco_f1_leakage"] == 1


def test_missing_coco_with_downloads_off_stops_before_any_job(tmp_path):
    def nowhere(section, missing):
        section["root"], section["wang_dir"] = str(missing), str(missing / "wang")

    out = full_data_missing_downloads_off(tmp_path, "coco", nowhere)
    assert "config key coco.wang_dir and coco.root" in out and "nowhere/wang/train.data" in out


def test_unknown_augmentation_and_table3_lr_outside_the_grid_are_rejected(tmp_path):
    def mutate(cfg):
        cfg["coco"]["augmentations"].append("mixmatch")
        cfg["coco"]["hparams"]["mixmatch"] = dict(cfg["coco"]["hparams"]["nomix"])
        cfg["coco"]["table3_lr"] = 0.5
        cfg["coco"]["calibration"]["augmentation"] = "nomx"
        cfg["coco"]["leakage"]["attackers"] = ["unbalanced"]

    proc = snakemake("coco", "-n", "--cores", 1, "--configfile", write_config(tmp_path, mutate))
    out = proc.stdout + proc.stderr
    assert "config key coco.hparams.mixmatch: unknown method 'mixmatch'" in out
    assert "config key coco.table3_lr: 0.5 is not one of coco.lrs" in out
    assert "config key coco.calibration.augmentation: 'nomx' is not one of coco.augmentations" in out
    assert "config key coco.f1_matched.attackers: ['balanced', 'unbalanced'] not all in coco.leakage.attackers" in out


def test_paper_table3_minimum_amplification_recomputed_and_the_two_printed_errors_flagged():
    values = yaml.safe_load((ROOT / "config/paper_values.yaml").read_text())["coco_leakage"]["values"]
    flagged = set()
    for key, row in values.items():
        recomputed = min(row["mixup"], row["cutmix"], row["nomix"]) - row["dataset"]
        assert abs(recomputed - row["min_delta"]) < 0.006, key
        if "min_delta_printed" in row:
            flagged.add(key)
            assert abs(row["min_delta_printed"] - row["min_delta"]) > 0.3
    assert flagged == {"unbalanced/random/none", "balanced/balanced/gamma1"}


def test_table3_f1_matched_amplification_by_hand(tmp_path):
    """Wang's F1-matched Δ of every cell worked out by hand from made-up curves, leakages and model F1s."""
    from types import SimpleNamespace

    from debias.experiments.coco_tables import table_leakage
    from debias.io import write_json

    def put(name, obj):
        write_json(tmp_path / name, obj)
        return str(tmp_path / name)

    dataset = {"none": put("ds.json", {"results": {m: {"mean": 0.6, "std": 0.01, "scores": [0.6, 0.6],
                                                       "test_majority_rate": 0.7} for m in ("unbalanced", "balanced")}})}
    curves = {"balanced": put("cb.json", {"points": [{"f1_mean": f, "leakage_mean": v}
                                                     for f, v in ((0.9, 0.70), (0.5, 0.60), (0.7, 0.64))]}),
              "unbalanced_split=none": put("cu.json", {"points": [{"f1_mean": 0.6, "leakage_mean": 0.70},
                                                                  {"f1_mean": 0.8, "leakage_mean": 0.74}]})}
    # (aug, pairing, seed, val F1, {attacker: leakage scores})
    models = [("nomix", "none", 1, 0.8, {"balanced": [0.72, 0.74], "unbalanced": [0.80]}),
              ("mixup", "random", 1, 0.6, {"balanced": [0.70], "unbalanced": [0.75]}),
              ("mixup", "random", 2, 0.7, {"balanced": [0.70], "unbalanced": [0.75]}),
              ("cutmix", "random", 1, 0.95, {"balanced": [0.9], "unbalanced": [0.9]})]
    files, metrics = [], []
    for i, (aug, pairing, seed, f1, scores) in enumerate(models):
        files.append(({"split": "none", "aug": aug, "pairing": pairing, "seed": seed},
                      put(f"m{i}.json", {"results": {m: {"scores": v, "test_majority_rate": 0.7}
                                                     for m, v in scores.items()}})))
        metrics.append(put(f"metrics{i}.json", {"metrics": {"val": {"macro_f1": f1}}}))
    out = SimpleNamespace(csv=tmp_path / "t.csv", md=tmp_path / "t.md", tex=tmp_path / "t.tex", html=tmp_path / "t.html")
    paper = {"values": {}, "table": "Table 3", "notes": ""}
    tidy = table_leakage(dataset, files, paper, ["none"], ["nomix", "mixup", "cutmix"], ["random"], "mini", out,
                         model_metrics=metrics, f1_curves=curves).set_index("attacker")
    b, u = tidy.loc["balanced"], tidy.loc["unbalanced"]
    # balanced curve (F1, %): (0.5, 60), (0.7, 64), (0.9, 70). nomix at F1 0.8: ℓ_D = 67, model 73 → 6;
    # mixup at 0.6: ℓ_D 62, model 70 → 8, at 0.7: 64 → 6, mean 7; cutmix at 0.95: beyond the curve
    assert b["nomix_dataset_at_f1"] == pytest.approx(67) and b["nomix_delta_f1"] == pytest.approx(6)
    assert b["mixup_val_f1"] == pytest.approx(0.65) and b["mixup_delta_f1"] == pytest.approx(7)
    assert np.isnan(b["cutmix_delta_f1"]) and b["min_delta_f1"] == pytest.approx(6)
    # unbalanced curve: (0.6, 70), (0.8, 74). nomix 80 − 74 = 6; mixup 75 − 70 = 5 and 75 − 72 = 3, mean 4
    assert u["nomix_delta_f1"] == pytest.approx(6) and u["mixup_delta_f1"] == pytest.approx(4)
    assert u["min_delta_f1"] == pytest.approx(4)
    assert b["min_delta"] == pytest.approx(min(73, 70, 90) - 60)  # the seed's Δ unchanged beside it
    md = out.md.read_text()
    assert "min. F1-matched ampl." in md and "| 4.00 |" in md and "no extrapolation: 2 of 6 cells" in md
    # the balanced attacker's curve only (the full config's choice): the unbalanced row has no F1-matched value
    only = table_leakage(dataset, files, paper, ["none"], ["nomix", "mixup", "cutmix"], ["random"], "mini", out,
                         model_metrics=metrics, f1_curves={"balanced": curves["balanced"]}).set_index("attacker")
    assert np.isnan(only.loc["unbalanced", "min_delta_f1"]) and only.loc["balanced", "min_delta_f1"] == pytest.approx(6)
    row = next(line for line in out.md.read_text().splitlines() if line.startswith("| False |"))
    assert row.endswith("| – | 70.00 |") and "no extrapolation: 1 of 3 cells" in out.md.read_text()


def test_g2_calibration_table_by_hand(tmp_path):
    from debias.experiments.coco_tables import table_calibration
    from debias.io import write_json

    runs = []
    for i, (regime, lr, seed, test) in enumerate([("head", 1e-3, 1, 0.50), ("head", 1e-4, 1, 0.40),
                                                  ("all", 1e-3, 1, 0.52), ("all", 1e-3, 2, 0.54),
                                                  ("all", 1e-4, 1, 0.50)]):
        write_json(tmp_path / f"m{i}.json", {
            "hparams": {"train_layers": regime}, "variant": {"lr": lr}, "seed": seed, "selected": {"epoch": 3},
            "metrics": {"test": {"mAP": test}, "val": {"mAP": test - 0.01}}, "images_per_s": 100.0,
            "wall_time_s": 5.0, "device_name": "cpu"})
        runs.append((regime, str(tmp_path / f"m{i}.json")))
    paper = {"values": {"nomix": {"1e-03": 52.901, "1e-04": 52.858}}}
    d = table_calibration(runs, paper, "nomix", "head", "mini", tmp_path / "g2.csv", tmp_path / "g2.md")
    d = d.set_index(["train_layers", "lr"])
    assert d.loc[("all", 1e-3), "test_map"] == pytest.approx(53.0) and d.loc[("all", 1e-3), "n_seeds"] == 2
    assert d.loc[("head", 1e-4), "delta"] == pytest.approx(40 - 52.858)
    # mean |test − paper|: head (2.901 + 12.858) / 2 = 7.88, all (0.099 + 2.858) / 2 = 1.48
    md = (tmp_path / "g2.md").read_text()
    assert "Closest to the paper: **all** (mean |test − paper| 1.48 points; head 7.88, all 1.48)" in md
    assert "| lr | head (configured) | all |" in md
    assert "| 1e-03 | 50.00 (val 49.00) [52.90, -2.90] | 53.00 (val 52.00) [52.90, +0.10] |" in md
    with pytest.raises(ValueError, match="m0.json: trained with train_layers 'head'; expected 'all'"):
        table_calibration([("all", runs[0][1])], paper, "nomix", "head", "mini", tmp_path / "x.csv",
                          tmp_path / "x.md")
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.slow
def test_g2_calibration_target_reuses_the_configured_regime_and_trains_the_other(tmp_path):
    def tiny_calibration(cfg):
        tiny_coco(cfg)
        cfg["coco"]["calibration"] = {"augmentation": "nomix", "train_layers": ["head", "all"]}

    path = write_config(tmp_path, tiny_calibration)
    counts = job_counts(snakemake("coco_calibration", "-n", "--cores", 2, "--configfile", path, check=True).stdout)
    # mini trains the whole network (train_layers: all): Table 2's run serves "all", one job trains "head"
    assert counts["coco_calibration_train"] == 1 and counts["coco_train"] == 1
    snakemake("coco_calibration", "--cores", 2, "--configfile", path, check=True)
    results = tmp_path / "results"
    head = read_json_file(next((results / "runs/coco_calibration").rglob("metrics.json")))
    assert head["hparams"]["train_layers"] == "head" and "train_layers=head" in str(
        next((results / "runs/coco_calibration").rglob("metrics.json")))
    d = pd.read_csv(results / "tables/coco_g2_calibration.csv")
    assert sorted(d.train_layers) == ["all", "head"] and d.test_map.between(0, 100).all()
    assert "all (configured)" in (results / "tables/coco_g2_calibration.md").read_text()


def read_json_file(path):
    import json

    return json.loads(path.read_text())


def tiny_coco(cfg):
    c = cfg["coco"]
    c["root"] = cfg["results"] + "/data/coco"
    c["embedded"].update(n_train=120, n_val=160)
    c["lrs"], c["table3_lr"], c["splits"] = [1.0e-2], 1.0e-2, ["none"]
    for hp in c["hparams"].values():
        hp.pop("steps", None)  # the run's length as one epoch, whichever key the config gives it in
        hp["epochs"] = 1
    c["leakage"].update(rounds=2, epochs=2, n_train_per_group=20, n_eval_per_group=10)


@pytest.mark.slow
def test_mini_coco_slice_builds_the_tables_and_one_row_edit_reruns_only_that_row(tmp_path):
    def tiny_per_cell(cfg):
        tiny_coco(cfg)
        cfg["coco"]["cells_per_job"] = 1  # one job per cell, so that an edit can rerun one row's jobs only

    path = write_config(tmp_path, tiny_per_cell)
    snakemake("coco", "--cores", 2, "--configfile", path, check=True)
    results = tmp_path / "results"
    for name in ("coco_splits", "coco_map", "coco_leakage"):
        for ext in ("csv", "md", "tex"):
            assert (results / "tables" / f"{name}.{ext}").stat().st_size > 0
    assert (results / "figures" / "coco_leakage.png").is_file()
    assert (results / "figures" / "coco_f1_leakage.png").is_file()
    assert sorted(p.name for p in (results / "leakage/coco/f1_curve").iterdir()) == [
        "balanced.json", "unbalanced_split=none.json"]
    leak = pd.read_csv(results / "tables" / "coco_leakage.csv")
    assert len(leak) == 2 * 2 and leak["dataset_mean"].between(0, 100).all()
    assert "min_delta_f1" in leak and "min. F1-matched ampl." in (results / "tables" / "coco_leakage.md").read_text()
    # edit the mixup row only: its training jobs, their leakage and the tables rerun, nothing else
    cfg = yaml.safe_load(path.read_text())
    cfg["coco"]["hparams"]["mixup"]["alpha"] = 0.5
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(cfg, sort_keys=True))  # another key order: no effect on its own
    proc = snakemake("coco", "-n", "--cores", 2, "--configfile", edited, check=True)
    cells = train_cells(proc.stdout)
    assert cells and {aug for _, aug, _, _ in cells} == {"mixup"}
    assert "rule coco_prepare:" not in proc.stdout and "rule coco_embedded:" not in proc.stdout
    assert "rule coco_f1_leakage:" not in proc.stdout  # the curves read ground truth only
