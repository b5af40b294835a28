"""config/mini_columns.yaml: every column of the papers' colored-MNIST table, FairFace figures and L2RW grid at mini
scale, read over config/mini.yaml. Its lists are the full config's (the papers'), and its documented command plans
every σ² and every share, into a results folder of its own, labelled 'custom scale'."""

import re

import yaml

from conftest import ROOT, snakemake

OVERLAY = ROOT / "config" / "mini_columns.yaml"
TARGETS = ("colored_mnist", "reweighting")  # the experiments' targets, as the README writes them


def load(name):
    return yaml.safe_load((ROOT / "config" / name).read_text())


def columns(cfg):
    return {"sigma2": cfg["colored_mnist"]["sigma2"], "fairface": cfg["reweighting"]["fairface"]["shares"],
            "l2rw_mnist": cfg["reweighting"]["l2rw_mnist"]["shares"]}


def test_the_overlay_has_every_column_of_the_full_config_and_only_those_changes():
    overlay, full, mini = load("mini_columns.yaml"), load("config.yaml"), load("mini.yaml")
    assert columns(overlay) == columns(full)
    assert all(len(columns(mini)[k]) < len(v) for k, v in columns(full).items())  # the quick start's subsets
    assert overlay["results"] != mini["results"]
    assert sorted(overlay) == ["colored_mnist", "results", "reweighting"]
    assert overlay["colored_mnist"].keys() == {"sigma2"}
    assert {k: v.keys() for k, v in overlay["reweighting"].items()} == {"fairface": {"shares"},
                                                                     "l2rw_mnist": {"shares"}}


def test_the_documented_command_plans_every_sigma2_and_share():
    proc = snakemake(*TARGETS, "-n", "--forceall", "--cores", 2, "--configfile", "config/mini.yaml", OVERLAY,
                     check=True)
    out = proc.stdout + proc.stderr
    results = load("mini_columns.yaml")["results"]
    planned = set(re.findall(re.escape(results) + r"/prepared/(\w+)/(\w+)=([\d.]+)\.pt", out))
    full = columns(load("config.yaml"))
    assert {float(v) for e, k, v in planned if e == "colored_mnist"} == set(full["sigma2"])
    for experiment in ("fairface", "l2rw_mnist"):
        assert {float(v) for e, k, v in planned if e == experiment} - {0.5} == set(full[experiment]), experiment
    assert "tables and figures say 'custom scale'" in out
    assert not re.search(r"results/mini/(runs|tables|prepared)/", out)  # the quick start's results are left alone


def test_status_reads_the_overlay_over_the_mini_config_as_snakemake_does(capsys):
    from debias import paths
    from debias.status import load_config, main

    merged = load_config(ROOT / "config/mini.yaml", OVERLAY)
    mini = load("mini.yaml")
    assert merged["results"] == "results/mini_columns" and columns(merged) == columns(load("config.yaml"))
    assert merged["colored_mnist"]["hparams"] == mini["colored_mnist"]["hparams"]  # the rest stays mini's
    assert merged["reweighting"]["fairface"]["n_train"] == mini["reweighting"]["fairface"]["n_train"]
    runs = paths.training_runs(merged)
    seeds, rw = len(mini["colored_mnist"]["seeds"]), mini["reweighting"]
    assert len(runs["colored_mnist"]) == 7 * len(mini["colored_mnist"]["methods"]) * seeds
    assert len(runs["l2rw_mnist"]) == 5 * len(rw["methods"]) * len(rw["seeds"])
    assert main(["--configfile", str(ROOT / "config/mini.yaml"), str(OVERLAY)]) == 0
    assert "results/mini_columns" in capsys.readouterr().out
