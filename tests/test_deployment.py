"""How the pipeline is deployed: conda environment files, the Slurm profile, cluster resources, the driver."""

import re
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, job_counts, snakemake, write_config


def test_building_the_dag_does_not_import_torch():
    # the driver (login node, envs/snakemake.yaml) needs no torch; every module the workflow imports is light
    modules = set()
    for smk in (ROOT / "workflow").rglob("*.smk"):
        modules |= set(re.findall(r"^\s*from (debias[\w.]*) import", smk.read_text(), re.M))
    assert {"debias.config", "debias.data.mnist", "debias.data.layout"} <= modules
    code = "import sys\n" + "".join(f"import {m}\n" for m in sorted(modules)) + "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False", modules


NO_TORCH = """import sys
class NoTorch:  # the driver environment, envs/snakemake.yaml: Snakemake, its Slurm plugin (pandas), no torch
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoTorch())
from snakemake.cli import main
sys.argv = ["snakemake", *sys.argv[1:]]
main()
"""


def test_the_driver_builds_the_full_dag_without_torch(tmp_path):
    """Every data path the DAG needs and the config check run without torch (data missing offline included); only
    the method rows are left to the jobs, and a warning says so."""
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg.update(allow_download=False, results=str(tmp_path / "results"))
    cfg["colored_mnist"].update(source="authors", authors_dir=str(tmp_path / "authors"))
    for key in ("coco", "waterbirds"):
        cfg[key]["root"] = str(tmp_path / key)
    (tmp_path / "offline.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "snakemake_no_torch.py").write_text(NO_TORCH)
    run = [sys.executable, str(tmp_path / "snakemake_no_torch.py")]
    proc = subprocess.run(run + ["-n", "--cores", "8", "--resources", "gpu=2", "--quiet", "rules"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "colored_mnist_train" in job_counts(proc.stdout) and "coco_train" in job_counts(proc.stdout)
    assert "WARNING: methods and their hyperparameters are not checked here: this environment has no torch" in proc.stderr
    # offline, every dataset missing: the data checks and the rules' inputs need no torch either
    proc = subprocess.run(run + ["colored_mnist", "-n", "--cores", "8", "--configfile", str(tmp_path / "offline.yaml")],
                          cwd=ROOT, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "No module named" not in out
    assert "WARNING: config key colored_mnist.authors_dir:" in out and "WARNING: config key coco." in out
    assert "authors/mnist_10color_jitter_var_0.020.npy" in out.split("Missing input files for rule colored_mnist_prepare")[1]


def test_slurm_profile_resubmits_and_keeps_going():
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm" and profile["retries"] >= 1
    assert profile["rerun-incomplete"] is True and profile["keep-going"] is True
    assert not list((ROOT / "profiles/slurm").glob("profile*.yaml"))  # one file name only (config.yaml)


@pytest.mark.parametrize("extra, expect, absent", [
    ({"gres": "gpu:a100:1"}, ["gres=gpu:a100:1"], ["gpu=1"]),
    ({"slurm_partition": "gpu", "gpu_model": "a100"}, ["gpu=1", "slurm_partition=gpu", "gpu_model=a100"], []),
])
def test_scheduler_keys_of_the_config_reach_the_training_jobs_only(tmp_path, extra, expect, absent):
    def gpu_site(cfg):
        cfg["resources"]["train_small"].update({"gpu": 1, **extra})  # colored MNIST trains as kind train_small

    path = write_config(tmp_path, gpu_site)
    out = snakemake("-n", "--forceall", "--cores", 2, "--configfile", path, check=True).stdout
    blocks = {b.split(":", 1)[0]: b for b in out.split("\nrule ")[1:]}
    train, table = blocks["colored_mnist_train"], blocks["colored_mnist_table"]
    res = re.search(r"resources: (.*)", train).group(1).split(", ")
    assert all(e in res for e in expect) and not any(a in res for a in absent), res
    assert "gres=" not in table and "gpu" not in re.search(r"resources: (.*)", table).group(1)


def test_started_from_a_subdirectory_says_to_run_from_the_root():
    proc = snakemake("-n", "--cores", 1, cwd=ROOT / "workflow")
    assert proc.returncode != 0
    assert f"Error: run snakemake from the repository root, {ROOT}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_gpu_jobs_given_no_gpu_are_warned_of_at_start():
    """At full scale, --resources gpu=0 (every GPU job capped to no GPU) or no GPU visible is said before any job."""
    zero = snakemake("-n", "--cores", 2, "--resources", "gpu=0", "--quiet", "rules", check=True)
    assert "WARNING: --resources gpu=0, but config resources train, train_small ask for GPUs" in zero.stderr
    none = snakemake("-n", "--cores", 2, "--resources", "gpu=2", "--quiet", "rules", check=True,
                     env={"DEBIAS_GPU_COUNT": "0", "CUDA_VISIBLE_DEVICES": ""})
    assert "ask for GPUs (device: 'auto') but none is visible here" in none.stderr
    two = snakemake("-n", "--cores", 2, "--resources", "gpu=2", "--quiet", "rules", check=True,
                    env={"DEBIAS_GPU_COUNT": "2", "CUDA_VISIBLE_DEVICES": ""})
    assert "gpu=0" not in two.stderr and "none is visible" not in two.stderr
    mini = snakemake("-n", "--cores", 2, "--resources", "gpu=0", "--configfile", "config/mini.yaml", "--quiet",
                     "rules", check=True)
    assert "ask for GPUs" not in mini.stderr  # the mini config asks for none
