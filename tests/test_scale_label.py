"""What the tables call a run's scale (debias.scale): the shipped configs are "full" and "mini"; a change of
protocol makes "custom", a change of place, machine or speed does not."""

import copy

import yaml

from conftest import ROOT, snakemake
from debias.scale import scale_label


def shipped(name):
    return yaml.safe_load((ROOT / "config" / name).read_text())


def test_the_shipped_configs_are_their_own_scale():
    assert scale_label(shipped("config.yaml"), ROOT) == ("full", [])
    assert scale_label(shipped("mini.yaml"), ROOT) == ("mini", [])


def test_other_roots_devices_resources_and_job_packing_keep_the_scale():
    cfg = shipped("config.yaml")
    cfg.update(results="elsewhere", device="cpu", allow_download=False)
    cfg["mnist"]["root"] = "/scratch/mnist"
    cfg["resources"]["train"]["mem_mb"] = 1
    cfg["colored_mnist"]["seeds_per_job"] = "all"
    cfg["colored_mnist"]["train"]["batch_runs"] = 35
    cfg["waterbirds"]["train"]["eval_batch_size"] = 7
    assert scale_label(cfg, ROOT) == ("full", [])


def test_a_changed_schedule_weights_or_grid_is_custom_and_named():
    base = shipped("config.yaml")
    cfg = copy.deepcopy(base)
    first = cfg["waterbirds"]["methods"][0]
    cfg["waterbirds"]["hparams"][first]["epochs"] = 1
    cfg["coco"]["model"]["weights"] = None
    cfg["colored_mnist"]["seeds"] = [0]
    label, diff = scale_label(cfg, ROOT)
    assert label == "custom"
    assert diff == ["coco.model.weights", "colored_mnist.seeds", f"waterbirds.hparams.{first}.epochs"]
    del cfg["coco"]  # a section left out is a difference too
    assert "coco" in scale_label(cfg, ROOT)[1]
    mini = shipped("mini.yaml")
    mini["colored_mnist"]["sigma2"] = [0.02]
    assert scale_label(mini, ROOT) == ("custom", ["colored_mnist.sigma2"])


def test_a_custom_run_says_so_when_the_dag_is_built_and_never_writes_over_the_shipped_results(tmp_path):
    cfg = shipped("mini.yaml")
    cfg["colored_mnist"]["seeds"] = [0]
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = snakemake("colored_mnist", "-n", "--forceall", "--cores", 1, "--configfile", path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert ("Error: this config's protocol differs from the shipped one for scale: mini (in colored_mnist.seeds) "
            "but writes to its results folder, results/mini, over the shipped results: set `results:` to another "
            "folder, e.g. results/mini-custom") in proc.stderr
    cfg["results"] = str(tmp_path / "results")
    path.write_text(yaml.safe_dump(cfg))
    proc = snakemake("colored_mnist", "-n", "--forceall", "--cores", 1, "--configfile", path, check=True)
    assert "differs from the shipped config for scale: mini in colored_mnist.seeds" in proc.stderr
    assert "differs from the shipped config" not in snakemake(
        "colored_mnist", "-n", "--forceall", "--cores", 1, "--configfile", "config/mini.yaml", check=True).stderr
