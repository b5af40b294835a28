"""The manual's result snippets come from a run's tables (``python -m debias.readme_results``).

The manual is README.md (the claims snippet) and docs/*.md (each experiment's mini result on its page); the
``test_readme_claims_*`` tests check the statements written beside those snippets against the quick start's run."""

import json
import os
from pathlib import Path

import pytest

from debias import readme_results

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "results" / "mini"


def write_tables(tables: Path) -> None:
    tables.mkdir(parents=True)
    (tables / "colored_mnist.csv").write_text(
        "method,sigma2,acc_mean,acc_std,n_seeds,paper\n"
        "baseline,0.02,0.5,0.1,2,0.4055\nbaseline,0.05,0.9,,1,0.845\n")
    (tables / "l2rw_mnist.csv").write_text(
        "method,share,err_mean,err_std,n_seeds\nbaseline,0.9,0.125,0.0,2\nbaseline,0.99,0.5,0.25,2\n")
    (tables / "fairface_reweighting.csv").write_text(
        "share,method,split,acc_mean,acc_std,n_seeds,acc_white_mean,acc_poc_mean\n"
        "0.5,baseline,test,0.75,0.0,2,0.5,1.0\n0.9,baseline,test,0.5,0.0,2,1.0,0.0\n"
        "0.9,baseline,train,0.9,0.0,2,1.0,0.0\n")
    (tables / "coco_leakage.csv").write_text(
        "split,attacker,pairing,dataset_mean,dataset_std,majority,nomix_mean,nomix_std,nomix_n,nomix_delta,"
        "mixup_mean,mixup_std,mixup_n,mixup_delta,nomix_val_f1,nomix_delta_f1,mixup_val_f1,mixup_delta_f1,"
        "min_delta_f1,f1_curve_min,f1_curve_max\n"
        "none,unbalanced,random,80.0,0.5,70.0,82.5,1.25,3,2.5,84.0,1.0,3,4.0,0.5,1.5,0.61,,1.5,0.55,0.9\n"
        "none,unbalanced,balanced,80.0,0.5,70.0,82.5,1.25,3,2.5,71.0,2.0,3,-9.0,0.5,1.5,0.6,-1.0,-1.0,0.55,0.9\n"
        "none,balanced,random,74.0,1.0,50.0,75.0,1.0,3,1.0,76.0,1.0,3,2.0,0.5,,0.61,,,0.6,0.95\n")
    (tables / "coco_map.csv").write_text(
        "augmentation,lr,map_mean,map_std,n_seeds\nnomix,0.001,30.0,,1\nmixup,0.001,25.5,,1\n"
        "nomix,0.01,20.04,,1\nmixup,0.01,21.96,,1\n")
    (tables / "waterbirds.csv").write_text(
        "row,column,mean,std,n_seeds,paper\n"
        "erm (last epoch),Avg (train-weighted),91.25,1.5,2,97.3\nerm (last epoch),Worst,10.0,,1,60.0\n"
        "groupdro (best val worst),Avg (train-weighted),88.0,0.04,2,\ngroupdro (best val worst),Worst,70.0,2.0,2,86.0\n")
    (tables / "method_matrix.csv").write_text(
        "method,dataset,task,metric,mean,std,n_seeds,status\n"
        "baseline,waterbirds,waterbirds,worst_group_accuracy,10.0,1.0,2,ok\n"
        "baseline,waterbirds,waterbirds,accuracy,80.0,1.0,2,ok\n"
        "groupdro,waterbirds,waterbirds,worst_group_accuracy,70.04,1.0,2,ok\n"
        "groupdro,waterbirds,waterbirds,accuracy,75.0,1.0,2,ok\n"
        "lnl,waterbirds,waterbirds,worst_group_accuracy,,,0,n/a: no batch field 'bias'\n"
        "lnl,waterbirds,waterbirds,accuracy,,,0,n/a: no batch field 'bias'\n")
    (tables / "method_matrix.md").write_text("Caption.\n\n| method | Waterbirds |\n|---|---|\n| lnl | n/a |\n\nA note.\n")


def test_snippets_replace_only_the_marked_text(tmp_path):
    write_tables(tmp_path / "tables")
    readme = ("intro\n" + "".join(f"<!-- results:{n} -->\nstale 0.296\n<!-- /results:{n} -->\nafter {n}\n"
                                  for n in readme_results.SNIPPETS))
    out = readme_results.render(readme, tmp_path)
    assert "stale" not in out and out.startswith("intro\n") and "after fairface" in out
    # values written down by hand from the CSVs above
    assert "| baseline | 0.500 ± 0.100 (0.4055) | 0.900 (0.845) |" in out  # one seed: no std; the paper as printed
    assert "| baseline | 0.125 ± 0.000 | 0.500 ± 0.250 |" in out
    assert "| baseline | 0.75 (White 0.50, other 1.00) | 0.50 (White 1.00, other 0.00) |" in out
    assert "| leakage | 80.00 ± 0.50 | 82.50 ± 1.25 | 84.00 ± 1.00 |" in out
    assert "| Δ = model − dataset |  | +2.50 | +4.00 |" in out
    assert "majority-gender rate 70.0 %; with the balanced, folded attacker 74.0 %" in out
    assert "mixup 71.0 % (random partners 84.0 %)" in out
    assert ("F1-matched Δ (Table 3's column \"min. F1-matched ampl.\"): 3 of 6 cells in range; "
            "the models' val macro-F1 0.500–0.610, "
            "the flipped ground truth's 0.550–0.950.") in out
    assert "| 1e-03 | 30.0 | 25.5 |" in out and "| 1e-02 | 20.0 | 22.0 |" in out
    assert "| erm (last epoch) | 91.3 ± 1.5 (97.3) | 10.0 (60.0) |" in out  # 91.25: the half rounds up
    assert "| groupdro (best val worst) | 88.0 ± 0.0 | 70.0 ± 2.0 (86.0) |" in out
    assert "| waterbirds | 2 of 3 | worst_group_accuracy | `groupdro` 70.0 | 10.0 |" in out
    assert "| method | Waterbirds |\n|---|---|\n| lnl | n/a |\n\nA note." in out and "Caption." not in out
    assert readme_results.render(out, tmp_path) == out


def test_missing_marker_names_it(tmp_path):
    write_tables(tmp_path / "tables")
    with pytest.raises(KeyError, match="results:colored_mnist"):
        readme_results.render("no markers", tmp_path)


def manual(root: Path = ROOT) -> dict[Path, str]:
    return {path: path.read_text() for path in readme_results.manual_files(root / "README.md")}


def test_each_snippet_is_marked_where_its_text_is():
    """The claims in the README, each experiment's mini result on its own page."""
    pages = {"claims": "README.md", "matrix": "README.md", "matrix_cells": "docs/matrix.md", "colored_mnist": "docs/colored_mnist.md", "l2rw_mnist": "docs/reweighting.md",
             "fairface": "docs/reweighting.md", "coco": "docs/coco.md", "waterbirds": "docs/waterbirds.md"}
    assert set(pages) == set(readme_results.SNIPPETS)
    texts = manual()
    for name, page in pages.items():
        holders = [p.relative_to(ROOT).as_posix() for p, t in texts.items() if f"<!-- results:{name} -->" in t]
        assert holders == [page], (name, holders)


def split_manual(tmp_path: Path) -> Path:
    """A README marking the claims and two pages marking the rest, as the repository's manual does."""
    names = list(readme_results.SNIPPETS)
    block = "".join
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("intro\n<!-- results:claims -->\nstale\n<!-- /results:claims -->\n")
    (tmp_path / "docs" / "a.md").write_text(block(f"<!-- results:{n} -->\nstale\n<!-- /results:{n} -->\n"
                                                  for n in names[:2]))
    (tmp_path / "docs" / "b.md").write_text("page b\n" + block(f"<!-- results:{n} -->\n<!-- /results:{n} -->\nend\n"
                                                                for n in names[2:] if n != "claims"))
    write_tables(tmp_path / "results" / "tables")
    return tmp_path / "README.md"


def test_snippets_render_in_the_readme_and_its_pages(tmp_path):
    readme = split_manual(tmp_path)
    texts = {p: p.read_text() for p in readme_results.manual_files(readme)}
    assert len(texts) == 3
    out = readme_results.render_files(texts, tmp_path / "results")
    assert not any("stale" in t for t in out.values())
    assert "| baseline | 0.500 ± 0.100 (0.4055) | 0.900 (0.845) |" in out[tmp_path / "docs" / "a.md"]
    assert "| erm (last epoch) | 91.3 ± 1.5 (97.3) | 10.0 (60.0) |" in out[tmp_path / "docs" / "b.md"]
    assert "No claims table" in out[readme] and out[tmp_path / "docs" / "b.md"].startswith("page b\n")
    assert readme_results.render_files(out, tmp_path / "results") == out

    # the CLI: --check fails while a file is stale, then rewrites every file, then passes
    args = ["--results", str(tmp_path / "results"), "--readme", str(readme)]
    assert readme_results.main(args + ["--check"]) == 1
    assert readme_results.main(args) == 0
    assert {p: p.read_text() for p in texts} == out
    assert readme_results.main(args + ["--check"]) == 0


def test_a_marker_missing_from_every_file_is_named(tmp_path):
    readme = split_manual(tmp_path)
    page = tmp_path / "docs" / "b.md"
    page.write_text(page.read_text().replace("results:coco -->", "results:cocoa -->"))
    texts = {p: p.read_text() for p in readme_results.manual_files(readme)}
    with pytest.raises(KeyError, match=r"found in none of .*<!-- results:coco -->"):
        readme_results.render_files(texts, tmp_path / "results")
    # half a pair: the file is named
    page.write_text(page.read_text().replace("<!-- /results:cocoa -->", "<!-- /results:coco -->"))
    texts = {p: p.read_text() for p in readme_results.manual_files(readme)}
    with pytest.raises(KeyError, match=r"b\.md: marker pair <!-- results:coco -->.*one marker without the other"):
        readme_results.render_files(texts, tmp_path / "results")


def test_readme_numbers_are_those_of_the_mini_run():
    """After the quick start (CI runs it before the tests), the manual's snippets equal the ones its tables give."""
    if not (MINI / "tables" / "fairface_reweighting.csv").is_file():
        if os.environ.get("DEBIAS_REQUIRE_MINI_RESULTS"):
            pytest.fail(f"{MINI}/tables is missing: run the quick start first")
        pytest.skip(f"no mini run in {MINI} (run the quick start first)")
    texts = manual()
    stale = [p.name for p, t in readme_results.render_files(texts, MINI).items() if t != texts[p]]
    assert not stale, (f"result snippets are stale in {stale}: "
                       "python -m debias.readme_results --results results/mini")


def mini_table(name):
    import pandas as pd

    path = MINI / "tables" / name
    if not path.is_file():
        if os.environ.get("DEBIAS_REQUIRE_MINI_RESULTS"):
            pytest.fail(f"{path} is missing: run the quick start first")
        pytest.skip(f"no mini run in {MINI} (run the quick start first)")
    return pd.read_csv(path)


def test_readme_claims_on_colored_mnist_hold_in_the_mini_run():
    d = mini_table("colored_mnist.csv").set_index(["method", "sigma2"]).acc_mean
    assert d["gray", 0.02] > d["baseline", 0.02] + 0.30  # "gray far above baseline at 0.020"
    assert d["lnl", 0.02] > d["baseline", 0.02] and d["lnl_adaptive", 0.02] > d["baseline", 0.02]
    assert d["baseline", 0.05] > d["baseline", 0.02]


def test_readme_claims_on_the_l2rw_grid_hold_in_the_mini_run():
    d = mini_table("l2rw_mnist.csv").set_index(["method", "share"]).err_mean
    base = d["baseline"].sort_index()
    assert base[0.9] <= 0.15  # the baseline learns at 0.9 ...
    assert base.iloc[-1] > base.iloc[0] + 0.2 and (base.diff().dropna() > -0.03).all()  # ... and fails as p grows
    assert d["baseline", 0.99] - d["l2rw", 0.99] >= 0.10  # l2rw at least 10 points better at 0.99


def test_readme_claims_on_fairface_hold_in_the_mini_run():
    d = mini_table("fairface_reweighting.csv")
    test = d[d.split == "test"].set_index(["method", "share"])
    imbalanced = test[test.index.get_level_values("share") > 0.5]
    for method in ("baseline", "random"):  # "predict White for every test image"
        rows = imbalanced.loc[method]
        assert (rows.acc_white_mean == 1.0).all() and (rows.acc_poc_mean == 0.0).all(), method
    assert test.loc[("baseline", 0.5), "acc_mean"] >= 0.75  # the balanced baseline learns
    # l2rw's mean: most seeds predict one class for (nearly) everything (per-class accuracies <= 0.05 and >= 0.95),
    # at least 2 of the 3 at each of the shares 0.9 and 0.99, not always the same class
    classes = set()
    for share in ("0.900", "0.990"):
        collapsed = 0
        for rec in (MINI / "runs" / "fairface").glob(f"share={share}/l2rw/seed=*/metrics.json"):
            m = json.loads(rec.read_text())["metrics"]["test"]
            if min(m["acc_white"], m["acc_poc"]) <= 0.05 and max(m["acc_white"], m["acc_poc"]) >= 0.95:
                collapsed += 1
                classes.add(m["acc_white"] > m["acc_poc"])
        assert collapsed >= 2, share
    assert classes == {True, False}
    for method in ("proportion", "resample", "hardmining"):  # "learn the task"
        assert imbalanced.loc[method].acc_mean.max() >= 0.8, method
    assert imbalanced.loc[("hardmining", 0.99), "acc_poc_mean"] <= 0.1  # majority at the largest share


def test_readme_claims_on_coco_hold_in_the_mini_run():
    d = mini_table("coco_leakage.csv").set_index(["attacker", "pairing", "split"])
    none = d.loc[("unbalanced", "random", "none")]
    assert none.dataset_mean > none.majority + 5  # "well above chance and above the majority rate"
    assert d.loc[("balanced", "random", "none")].dataset_mean > 60
    m = mini_table("coco_map.csv").set_index(["augmentation", "lr"]).map_mean
    assert m["nomix"].max() >= 60  # "the mini classifiers learn"
    for lr in m["nomix"].index:  # "mixup and CutMix lower mAP at both lrs"
        assert max(m["mixup", lr], m["cutmix", lr]) < m["nomix", lr], lr
    # "every F1-matched Δ that is defined (44 of the 48 cells) is positive"; the others: CutMix below the curves
    augs = ("nomix", "mixup", "cutmix")
    f1_delta = d[[f"{a}_delta_f1" for a in augs]]
    assert f1_delta.notna().to_numpy().mean() >= 0.5 and (f1_delta.stack().dropna() > 0).all()
    for a in augs:
        undefined = d[f"{a}_delta_f1"].isna()
        assert (d.loc[undefined, f"{a}_val_f1"] < d.loc[undefined, "f1_curve_min"]).all(), a
    gamma1 = d.loc[("unbalanced", "random", "gamma1")]  # "γ = 1 models leak 15-19 points more than their data"
    assert min(gamma1[f"{a}_delta"] for a in augs) >= 14
    # "on the original split the plain Δ is small for no mixing; mixup below it, CutMix above"
    assert abs(none.nomix_delta) < 2 and none.mixup_mean < none.nomix_mean < none.cutmix_mean
    assert d.loc[("unbalanced", "balanced", "none")].mixup_mean > none.mixup_mean  # balanced partners raise it


def test_readme_claims_on_waterbirds_hold_in_the_mini_run():
    d = mini_table("waterbirds.csv")
    worst = d[d.column == "Worst"].set_index("row")["mean"]
    erm = worst["erm (last epoch)"]
    assert worst["groupdro (best val worst)"] >= erm + 10  # "GroupDRO ... holds"
    fisher = worst[[r for r in worst.index if r.startswith("fisher_flat")]]
    assert fisher.max() >= erm + 10 and fisher.min() < erm + 10  # holds at some ε, not at every ε
    assert worst["groupdro (best val worst)"] > worst.max() - 1e-9  # GroupDRO far ahead of everything
    assert mini_table("waterbirds_traces.csv").premise_holds.all()  # the premise holds on the mini data
