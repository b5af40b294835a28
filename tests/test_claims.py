"""Which claims reproduce (debias.claims*): verdicts, intervals against hand computations, the claims file's
checks, not-run claims, and the claims rule through Snakemake on tables the test writes."""

import math
import os
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT, snakemake, write_config
from debias import claims, claims_cells, claims_expr, claims_spec, claims_tables, readme_results
from debias.claims_spec import Claim, ClaimsError
from debias.claims_stats import verdict

# Student t quantiles t(0.975, df), from a printed table (not computed by the code under test)
T975 = {1: 12.706204736, 2: 4.302652730, 4: 2.776445105}
SCHEMA = ROOT / "workflow/schemas/claims.schema.yaml"
MINI = yaml.safe_load((ROOT / "config/mini.yaml").read_text())


def claim(quantity, direction=">", paper=None, tol=0.02, table="colored_mnist", cid="c"):
    return Claim(cid, claims_tables.TABLES[table].paper, "a statement", table, quantity, claims_expr.parse(quantity),
                 direction, paper, "source", tol, "default")


def cm_frame(rows):
    """A colored_mnist table: (method, sigma2, mean, std, n[, paper])."""
    return pd.DataFrame([dict(zip(["method", "sigma2", "acc_mean", "acc_std", "n_seeds", "paper"], r)) for r in rows])


# -- verdicts -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("direction, low, high, paper, expected", [
    (">", 0.5, 1.5, 1.0, "holds"),                  # right side of 0, reaches 1.0 ± 0.2
    (">", 0.1, 0.3, 1.0, "holds, smaller"),         # right side, wholly below 0.8
    (">", 1.5, 3.0, 1.0, "holds, larger"),          # right side, wholly above 1.2
    (">", 0.1, 0.3, None, "holds"),                 # no paper value: the size is not judged
    (">", -3.0, -1.0, 1.0, "does not hold"),        # excludes 0 on the other side
    (">", -0.1, 0.5, 1.0, "does not hold"),         # includes 0, misses the band 0.8-1.2
    (">", -0.5, 1.5, 1.0, "inconclusive"),          # includes 0 and the band
    (">", -0.5, 1.5, None, "inconclusive"),
    (">", math.nan, math.nan, 1.0, "inconclusive"),  # no interval (too few replicates)
    ("<", -1.5, -0.5, -1.0, "holds"),
    ("<", -0.3, -0.1, -1.0, "holds, smaller"),
    ("<", -3.0, -1.5, -1.0, "holds, larger"),
    ("<", 0.5, 2.0, -1.0, "does not hold"),
    ("=", -0.1, 0.1, 0.0, "holds"),                 # inside 0 ± 0.2
    ("=", 0.3, 0.5, 0.0, "does not hold"),          # misses the band
    ("=", 0.1, 0.5, 0.0, "inconclusive"),           # partly inside
])
def test_each_verdict_from_made_up_intervals(direction, low, high, paper, expected):
    assert verdict(direction, low, high, paper, 0.2) == expected


# -- intervals, against hand computations ---------------------------------------------------------------------------

def test_one_cell_has_the_t_interval_of_its_mean_std_and_n():
    out = claims.measure_one(claim("acc{method=lnl, sigma2=0.02}"), cm_frame([("lnl", 0.02, 0.5, 0.1, 3, 0.8)]))
    half = T975[2] * 0.1 / math.sqrt(3)  # t(0.975, n-1) s / sqrt(n), n = 3
    assert out["measured"] == pytest.approx(0.5)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((0.5 - half, 0.5 + half), abs=1e-6)
    assert out["n"] == 3 and out["interval"] == "t over 3 seeds"


def test_a_difference_without_per_seed_values_is_welch():
    frame = cm_frame([("lnl", 0.02, 0.8, 0.1, 3), ("baseline", 0.02, 0.5, 0.1, 3)])
    out = claims.measure_one(claim("acc{method=lnl, sigma2=0.02} - acc{method=baseline, sigma2=0.02}"), frame)
    # equal std and n: Welch-Satterthwaite df = 2 (n - 1) = 4; se = sqrt(s²/n + s²/n)
    half = T975[4] * math.sqrt(2 * 0.1 ** 2 / 3)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((0.3 - half, 0.3 + half), abs=1e-6)
    assert out["interval"].startswith("Welch t over 3 + 3 seeds")


def test_a_difference_with_per_seed_values_is_paired_by_seed():
    frame = cm_frame([("lnl", 0.02, 0.6, 0.1, 3), ("baseline", 0.02, 0.4, 0.1, 3)])
    seeds = pd.DataFrame({"method": ["lnl"] * 3 + ["baseline"] * 3, "sigma2": [0.02] * 6, "seed": [0, 1, 2] * 2,
                          "acc": [0.5, 0.7, 0.6, 0.3, 0.4, 0.5]})
    out = claims.measure_one(claim("acc{method=lnl, sigma2=0.02} - acc{method=baseline, sigma2=0.02}"), frame, seeds)
    # per seed: 0.2, 0.3, 0.1 -> mean 0.2, sd 0.1, n 3
    half = T975[2] * 0.1 / math.sqrt(3)
    assert (out["measured"], out["ci_low"], out["ci_high"]) == pytest.approx((0.2, 0.2 - half, 0.2 + half), abs=1e-9)
    assert out["interval"] == "t over 3 seeds, paired by seed"
    # runs that do not match the table (another mean) are not trusted: Welch from the table
    seeds.loc[0, "acc"] = 0.9
    out = claims.measure_one(claim("acc{method=lnl, sigma2=0.02} - acc{method=baseline, sigma2=0.02}"), frame, seeds)
    assert out["interval"].startswith("Welch") and "do not match" in out["note"]


def test_one_replicate_is_inconclusive_and_says_the_minimum():
    out = claims.measure_one(claim("acc{method=lnl, sigma2=0.02}", paper=0.5),
                             cm_frame([("lnl", 0.02, 0.5, math.nan, 1)]))
    assert out["verdict"] == "inconclusive" and "needs ≥ 2" in out["note"] and "n = 1" in out["note"]
    out = claims.measure_one(claim("acc{method=lnl, sigma2=0.02}"), cm_frame([("lnl", 0.02, 0.5, math.nan, 3)]))
    assert out["verdict"] == "inconclusive" and "n = 3 (seeds) but no std" in out["note"]


def test_aggregates_range_over_the_values_the_table_has():
    frame = cm_frame([("lnl", 0.02, 0.9, 0.01, 2), ("baseline", 0.02, 0.4, 0.01, 2),
                      ("lnl", 0.05, 0.95, 0.01, 2), ("baseline", 0.05, 0.85, 0.01, 2),
                      ("lnl", 0.035, 0.93, 0.01, 2)])  # no baseline at 0.035: that σ² drops out
    out = claims.measure_one(claim("min(acc{method=lnl, sigma2=*} - acc{method=baseline, sigma2=*})"), frame)
    assert out["measured"] == pytest.approx(0.10) and "min at sigma2 = 0.05" in out["note"]
    out = claims.measure_one(claim("mean(acc{method=lnl, sigma2=0.02|0.05|0.04}) - 0.5"), frame)
    assert out["measured"] == pytest.approx((0.9 + 0.95) / 2 - 0.5) and "sigma2 0.04 not in this run" in out["note"]
    # one mean, one σ² from another aggregate: max binds sigma2 in its own argument only
    out = claims.measure_one(claim("max(acc{method=lnl, sigma2=*}) - acc{method=baseline, sigma2=0.02}"), frame)
    assert out["measured"] == pytest.approx(0.95 - 0.4)
    # a key used only inside a nested aggregate is bound there: the max over σ², not the mean of each σ²'s value
    out = claims.measure_one(claim("mean(max(acc{method=lnl, sigma2=*}) - acc{method=baseline, sigma2=0.02})"), frame)
    assert out["measured"] == pytest.approx(0.95 - 0.4)


MINI_RUN = ROOT / "results" / "mini"
RUN_FILES = {"colored_mnist": "colored_mnist/*/*/seed=*/metrics.json",
             "fairface_reweighting": "fairface/*/*/seed=*/metrics.json",
             "l2rw_mnist": "l2rw_mnist/*/*/seed=*/metrics.json", "waterbirds": "waterbirds/*/*/seed=*/metrics.json",
             "coco_map": "coco/split=none/*/pairing=[nr]*/lr=*/seed=*/metrics.json"}  # Table 2: random partners


def per_seed_mismatches(run: Path, table: str) -> list[str]:
    """The cells of ``run``'s ``table`` whose per-seed values (the runs' metrics.json, read as the claims rule reads
    them) do not give the table's mean and n."""
    from debias import claims_replicates

    layout = claims_tables.TABLES[table]
    frame = pd.read_csv(run / "tables" / layout.file)
    seeds = claims_replicates.read(table, sorted(map(str, (run / "runs").glob(RUN_FILES[table]))))
    evaluation = claims._Evaluation(None, frame, layout, seeds, {})
    bad = []
    for measure, m in layout.measures.items():
        for _, row in frame[frame[m.mean].notna()].iterrows() if m.mean in frame else []:
            if evaluation.per_seed(row, measure, int(row[m.n])) is None:
                bad.append(f"{measure} {row[list(layout.keys)].to_dict()}")
    return bad


@pytest.mark.parametrize("table", list(RUN_FILES))
def test_per_seed_values_from_the_runs_agree_with_the_mini_tables(table):
    """After the quick start: every cell's per-seed values, read from the runs for the paired intervals, give the
    table's own mean and n (else the claims fall back to Welch, and say so)."""
    if not (MINI_RUN / "tables" / claims_tables.TABLES[table].file).is_file():
        if os.environ.get("DEBIAS_REQUIRE_MINI_RESULTS"):
            pytest.fail(f"{MINI_RUN}/tables is missing: run the quick start first")
        pytest.skip(f"no mini run in {MINI_RUN} (run the quick start first)")
    assert per_seed_mismatches(MINI_RUN, table) == []


# -- not run --------------------------------------------------------------------------------------------------------

def spec_of(entries, cells=None):
    doc = {"defaults": {"tolerance_points": 2}, "papers": {p: p for p in claims_tables.PAPERS},
           "claims": [{"statement": "a claim of the paper", "direction": ">", "paper_value": None,
                       "source": "§1, Table 1", **e} for e in entries],
           "cells": cells or {"tolerance_points": 2, "printed_spread": {}}}
    return doc


def load_doc(tmp_path, doc, config=MINI):
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return claims_spec.load(path, SCHEMA, config)


def test_missing_inputs_give_not_run_and_nothing_else_fails(tmp_path):
    tables = tmp_path / "tables"
    tables.mkdir()
    cm_frame([("lnl", 0.02, 0.8, 0.01, 3, 0.8185), ("baseline", 0.02, 0.4, 0.01, 3, 0.4055)]).assign(
        scale="mini").to_csv(tables / "colored_mnist.csv", index=False)
    spec = load_doc(tmp_path, spec_of([
        {"id": "ok", "paper": "003", "table": "colored_mnist",
         "quantity": "acc{method=lnl, sigma2=0.02} - acc{method=baseline, sigma2=0.02}", "paper_value": 0.413},
        {"id": "no_table", "paper": "002", "table": "waterbirds", "quantity": "acc{method=erm, column=Worst}"},
        {"id": "no_column", "paper": "003", "table": "colored_mnist",
         "quantity": "acc_bias_conflicting{method=lnl, sigma2=0.02}"},
        {"id": "no_cell", "paper": "003", "table": "colored_mnist", "quantity": "acc{method=gray, sigma2=0.02}"},
        {"id": "no_value", "paper": "003", "table": "colored_mnist",
         "quantity": "min(acc{method=lnl, sigma2=0.03|0.04})"},
    ]))
    out = tmp_path / "out"
    d = claims.write(spec, tables, "mini", out / "claims.csv", out / "claims.md", [out / "c.png", out / "c.pdf"])
    d = d.set_index("claim")
    assert d.loc["ok", "verdict"] == "holds"
    assert (d.drop("ok").verdict == "not run").all()
    assert "no table waterbirds.csv" in d.loc["no_table", "note"]
    assert "column acc_bias_conflicting_mean" in d.loc["no_column", "note"]
    assert "no row acc{method=gray, sigma2=0.02}" in d.loc["no_cell", "note"]
    assert "no cell of min(...)" in d.loc["no_value", "note"]
    written = pd.read_csv(out / "claims.csv")
    assert {"claim", "paper", "statement", "measured", "ci_low", "ci_high", "n", "paper_value", "verdict"} <= set(
        written.columns)
    assert "## Every cell against the paper" in (out / "claims.md").read_text()
    assert (out / "c.png").stat().st_size > 1000 and (out / "c.pdf").stat().st_size > 1000


# -- the claims file is checked before any job ----------------------------------------------------------------------

def shipped():
    return yaml.safe_load((ROOT / "config/claims.yaml").read_text())


@pytest.mark.parametrize("edit, where, what", [
    (lambda c: c.update(table="colour_mnist"), "key table", "unknown table 'colour_mnist'"),
    (lambda c: c.update(quantity="accuracy{method=lnl, sigma2=0.02}"), "key quantity", "unknown column 'accuracy'"),
    (lambda c: c.update(quantity="acc{method=lnl_v2, sigma2=0.02}"), "key quantity", "unknown method 'lnl_v2'"),
    (lambda c: c.update(quantity="acc{methd=lnl, sigma2=0.02}"), "key quantity", "unknown key 'methd'"),
    (lambda c: c.update(quantity="acc{method=lnl, sigma2=*}"), "key quantity", "outside mean( ), min( ) or max( )"),
    (lambda c: c.update(quantity="acc{method=lnl, sigma2=0.02} * acc{method=gray, sigma2=0.02}"), "key quantity",
     "a product of two cells"),
    (lambda c: c.update(quantity="median(acc{method=lnl, sigma2=*})"), "key quantity", "unknown function 'median'"),
    (lambda c: c.update(direction="bigger"), "key direction", "'bigger' is not one of"),
    (lambda c: c.update(paper="002"), "key paper", "table colored_mnist reproduces paper 003"),
    (lambda c: c.pop("statement"), "", "'statement' is a required property"),
])
def test_a_claims_file_with_an_unknown_table_column_or_method_is_refused(tmp_path, edit, where, what):
    doc = shipped()
    target = next(c for c in doc["claims"] if c["table"] == "colored_mnist")
    edit(target)
    with pytest.raises(ClaimsError) as err:
        load_doc(tmp_path, doc)
    msg = str(err.value)
    assert str(tmp_path / "claims.yaml") in msg and f"claim {target['id']!r}" in msg and where in msg and what in msg


def test_unknown_values_of_fixed_keys_and_spread_rows_are_refused(tmp_path):
    doc = shipped()
    target = next(c for c in doc["claims"] if c["table"] == "coco_leakage")
    target["quantity"] = "nomix{attacker=unbalanced, pairing=random, split=gamma4}"
    doc["cells"]["printed_spread"]["coco_leakage"]["unbalanced/random/gamma9"] = {"nomix": 0.1}
    with pytest.raises(ClaimsError) as err:
        load_doc(tmp_path, doc)
    assert "unknown value 'gamma4' for key 'split'" in str(err.value)
    assert "printed_spread.coco_leakage.unbalanced/random/gamma9: unknown value 'gamma9' of split" in str(err.value)


def test_the_shipped_claims_cover_every_paper_and_pass_both_configs():
    full = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    for config in (MINI, full):
        spec = claims_spec.load(ROOT / "config/claims.yaml", SCHEMA, config)
    assert len(spec.claims) >= 12
    assert {c.paper for c in spec.claims} == set(claims_tables.PAPERS)
    # claims about the ordering of methods, not only single cells
    assert any(isinstance(c.expr, claims_expr.Agg) or "max(" in c.quantity for c in spec.claims)


def paper_tables() -> dict[str, pd.DataFrame]:
    """The papers' printed numbers (config/paper_values.yaml) laid out as this pipeline's tidy tables."""
    pv = yaml.safe_load((ROOT / "config/paper_values.yaml").read_text())
    cells = dict(acc_std=0.0, n_seeds=2)
    cm = pd.DataFrame([{"method": m, "sigma2": float(s), "acc_mean": v, **cells}
                       for m, row in pv["colored_mnist"]["values"].items() for s, v in row.items()])
    columns = {"avg": "Avg (train-weighted)", "worst": "Worst"}
    wb = pd.DataFrame([{"method": key.split("/")[0], "selection": key.split("/")[1], "column": columns[c],
                        "epsilon_percentile": 50.0 if key.startswith("fisher_flat") else math.nan, "mean": v,
                        "std": 0.0, "n_seeds": 2} for key, row in pv["waterbirds"]["values"].items()
                       for c, v in row.items()])
    cmap = pd.DataFrame([{"augmentation": a, "lr": float(lr), "map_mean": v, "map_std": 0.0, "n_seeds": 2}
                         for a, row in pv["coco_map"]["values"].items() for lr, v in row.items()])
    leak = pd.DataFrame([{"attacker": k.split("/")[0], "pairing": k.split("/")[1], "split": k.split("/")[2],
                          **{f"{m}_mean": row[m] for m in ("dataset", "nomix", "mixup", "cutmix")},
                          **{f"{m}_std": 0.0 for m in ("dataset", "nomix", "mixup", "cutmix")},
                          **{f"{m}_n": 2 for m in ("nomix", "mixup", "cutmix")}}
                         for k, row in pv["coco_leakage"]["values"].items()])
    return {"colored_mnist": cm, "waterbirds": wb, "coco_map": cmap, "coco_leakage": leak}


def test_each_printed_paper_value_is_the_quantity_on_the_papers_own_numbers():
    """claims.yaml's paper_value is each claim's quantity computed on the paper's table (config/paper_values.yaml),
    to the rounding of the printed digits."""
    spec = claims_spec.load(ROOT / "config/claims.yaml", SCHEMA, MINI)
    tables, checked = paper_tables(), 0
    for c in spec.claims:
        if c.paper_value is None or c.table not in tables:
            continue
        out = claims.measure_one(c, tables[c.table], n_fill={"dataset": 2})
        assert out["measured"] == pytest.approx(c.paper_value, abs=0.006), c.id
        checked += 1
    assert checked >= 15


def test_the_value_sets_are_those_of_the_code_that_writes_the_tables():
    from debias.engine import SELECTION_RULES
    from debias.experiments.coco_keys import SPLIT_NAMES
    from debias.experiments.waterbirds import METRICS

    assert set(claims_tables.SELECTION_RULES) == set(SELECTION_RULES)
    assert set(claims_tables.WATERBIRDS_COLUMNS) == set(METRICS)
    assert set(claims_tables.COCO_SPLITS) == set(SPLIT_NAMES)


# -- every cell against the paper -----------------------------------------------------------------------------------

def test_cells_within_outside_and_not_comparable_by_hand(tmp_path):
    spec = load_doc(tmp_path, spec_of(
        [{"id": "x", "paper": "003", "table": "colored_mnist", "quantity": "acc{method=lnl, sigma2=0.02}"}],
        {"tolerance_points": 2, "printed_spread": {"coco_leakage": {"unbalanced/random/none": {"nomix": 0.5}}}}))
    tables = tmp_path / "tables"
    tables.mkdir()
    # |0.81 - 0.80| <= 0.02 within; |0.70 - 0.80| outside; no paper value: not comparable (x 2: acc_bias_conflicting)
    cm_frame([("a", 0.02, 0.81, 0.0, 2, 0.80), ("b", 0.02, 0.70, 0.0, 2, 0.80), ("c", 0.02, 0.5, 0.0, 2, math.nan)]
             ).assign(acc_bias_conflicting_mean=[0.1, 0.2, math.nan], scale="full").to_csv(
        tables / "colored_mnist.csv", index=False)
    # nomix: 80.0 vs 78.49 ± 0.5 printed: outside (within 2 points); dataset: 75.0 vs 73.85, no ± printed -> 2
    # points: within; mixup: 80.0 vs 77.38: outside; cutmix: no paper value
    pd.DataFrame([{"attacker": "unbalanced", "pairing": "random", "split": "none", "nomix_mean": 80.0,
                   "nomix_paper": 78.49, "dataset_mean": 75.0, "dataset_paper": 73.85, "mixup_mean": 80.0,
                   "mixup_paper": 77.38, "cutmix_mean": 79.0, "scale": "mini"}]).to_csv(
        tables / "coco_leakage.csv", index=False)
    d = claims_cells.compare(spec, tables).set_index("table")
    assert d.loc["colored_mnist", ["cells", "within", "outside", "not_comparable"]].tolist() == [5, 1, 1, 3]
    assert d.loc["colored_mnist", "comparable_here"] == "yes"
    assert d.loc["coco_leakage", ["cells", "within", "outside", "not_comparable"]].tolist() == [4, 1, 2, 1]
    assert d.loc["coco_leakage", "comparable_here"] == "no (mini scale)"


@pytest.mark.slow
def test_a_bad_claims_file_stops_snakemake_before_any_job(tmp_path):
    """The check runs while Snakemake builds the DAG (workflow/rules/claims_common.smk): a copy of the workflow
    whose claims file names an unknown method stops with the file, the claim and the key, and runs nothing."""
    import shutil

    repo = tmp_path / "repo"
    for part in ("workflow", "src", "config", "scripts", "envs"):
        shutil.copytree(ROOT / part, repo / part, ignore=shutil.ignore_patterns("__pycache__"))
    doc = shipped()
    doc["claims"][0]["quantity"] = doc["claims"][0]["quantity"].replace("nomix", "nomix_v2", 1)
    (repo / "config/claims.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    cfg = write_config(tmp_path, lambda c: None)
    proc = snakemake("-n", "--cores", 1, "--configfile", cfg, cwd=repo)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out
    assert (f"config/claims.yaml: invalid claims file:\n  claim {doc['claims'][0]['id']!r}, key quantity: unknown "
            "method 'nomix_v2' for key 'augmentation'") in out
    assert not (tmp_path / "results").exists()


# -- README snippet and report -------------------------------------------------------------------------------------

def test_readme_snippet_lists_per_paper_what_holds(tmp_path):
    pd.DataFrame([
        {"claim": "a", "paper": "003", "paper_title": "LNL", "verdict": "holds", "n": 2, "scale": "mini"},
        {"claim": "b", "paper": "003", "paper_title": "LNL", "verdict": "holds, smaller", "n": 2, "scale": "mini"},
        {"claim": "c", "paper": "003", "paper_title": "LNL", "verdict": "does not hold", "n": 3, "scale": "mini"},
        {"claim": "d", "paper": "000", "paper_title": "COCO", "verdict": "not run", "n": None, "scale": "mini"},
    ]).to_csv(tmp_path / "claims.csv", index=False)
    text = readme_results.claims(tmp_path)
    assert "| 000 COCO | 1 | – | – | 0 | 1 |" in text
    assert "| 003 LNL | 3 | `a`, `b` (smaller) | `c` | 0 | 0 |" in text
    assert text.startswith("Mini scale: 4 claims") and "(n = 2–3:" in text
    assert "No claims table" in readme_results.claims(tmp_path / "nowhere")


def test_the_claims_category_comes_first_in_the_report():
    """Snakemake's report menu sorts categories by name (localeCompare): the claims' must sort first."""
    names = {}
    for smk in (ROOT / "workflow/rules").glob("*.smk"):
        names.update(re.findall(r'^(\w+_REPORT) = "([^"]+)"', smk.read_text(), re.M))
    assert len(names) >= 6
    assert min(names.values(), key=str.casefold) == names["CLAIMS_REPORT"]


# -- the rule, through Snakemake ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_claims_rule_runs_on_tables_the_test_writes(tmp_path):
    """`snakemake claims` on a run whose only tables are the three this test writes (no COCO, no Waterbirds in the
    config): the claims on those are measured, every other is `not run`, and the page and figure are written."""
    def no_coco_no_waterbirds(cfg):
        cfg.pop("coco")
        cfg.pop("waterbirds")

    cfg = write_config(tmp_path, no_coco_no_waterbirds)
    tables = tmp_path / "results" / "tables"
    tables.mkdir(parents=True)
    cm_frame([("lnl", 0.02, 0.8, 0.01, 3, 0.8185), ("baseline", 0.02, 0.4, 0.01, 3, 0.4055)]).assign(
        scale="mini").to_csv(tables / "colored_mnist.csv", index=False)
    pd.DataFrame([{"share": 0.9, "method": "baseline", "split": "test", "acc_mean": 0.5, "acc_std": 0.0,
                   "n_seeds": 2}]).to_csv(tables / "fairface_reweighting.csv", index=False)
    pd.DataFrame([{"method": m, "share": 0.99, "err_mean": e, "err_std": 0.01, "n_seeds": 3}
                  for m, e in (("baseline", 0.5), ("l2rw", 0.1))]).to_csv(tables / "l2rw_mnist.csv", index=False)
    snakemake("claims", "--allowed-rules", "claims", "--cores", 1, "--configfile", cfg, check=True)
    d = pd.read_csv(tables / "claims.csv", dtype={"paper": str}).set_index("claim")
    assert len(d) == len(shipped()["claims"])
    assert (d[d.table.isin(["coco_map", "coco_leakage", "waterbirds"])].verdict == "not run").all()
    # 0.8 - 0.4 = 0.40, Welch over 3 + 3 seeds (df 4): ± 2.776 sqrt(2 · 0.01² / 3) = ± 0.0227, reaching 0.413 ± 0.02
    gain = d.loc["lnl_gain_at_strongest_bias"]
    half = T975[4] * math.sqrt(2 * 0.01 ** 2 / 3)
    assert (gain.ci_low, gain.ci_high) == pytest.approx((0.4 - half, 0.4 + half), abs=1e-5)
    assert gain.verdict == "holds"
    assert d.loc["l2rw_below_baseline_error_mnist", "verdict"] == "holds"
    assert "## Every cell against the paper" in (tables / "claims.md").read_text()
    assert (tmp_path / "results" / "figures" / "claims.png").stat().st_size > 1000
