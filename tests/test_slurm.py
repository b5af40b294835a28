"""The cluster path, on a real one-node Slurm started by the test (tests/slurm_cluster.py).

One run of the README's cluster command through the Slurm executor builds a colored-MNIST slice to the end.
On the way one training job is killed with SIGKILL halfway; Snakemake must resubmit it and the resubmitted job
must resume from its saved state and end with the same metrics as its uninterrupted twin (a second row with the
same method, hyperparameters and seed, trained in a job of its own). Skipped, with the reason, where Slurm
cannot start (not installed, not root, a Slurm already configured here); .ci/run installs Slurm and sets
DEBIAS_REQUIRE_SLURM=1, which turns that skip into a failure.
"""

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import slurm_cluster
from conftest import ROOT, write_config

pytestmark = pytest.mark.slow

README_MARK = "<!-- slurm-command -->"
ACCOUNT = "debias-test"  # any account is accepted where Slurm accounting is off
KILL_AT_EPOCH = 3
EPOCHS = 6


def readme_cluster_command() -> list[str]:
    """The one command in the fenced block after the README's cluster marker, placeholders intact."""
    text = (ROOT / "README.md").read_text()
    assert README_MARK in text, f"README.md: no {README_MARK} marker before the cluster command"
    block = text.split(README_MARK, 1)[1].split("```")[1]
    lines = [ln for ln in block.splitlines()[1:] if ln.strip() and not ln.lstrip().startswith("#")]
    assert len(lines) == 1, f"README.md: expected one command after {README_MARK}, found {lines}"
    return shlex.split(lines[0])


def slurm_slice(cfg):
    cfg["resources"]["train"]["gpu"] = 1  # every training job asks Slurm for a (fake) GPU: colored MNIST's are
    cfg["resources"]["gpu_slots_per_device"] = 4  # small jobs that share a device locally (one slot of 4); each
    cfg["resources"]["train_small"].update(gpu=1, gpu_slots=1)  # submitted to Slurm is its own allocation
    cm = cfg["colored_mnist"]
    cm["sigma2"], cm["seeds"], cm["seeds_per_job"], cm["sigma2_per_job"] = [0.02], [0], 1, 1  # full-scale jobs
    base = {**cm["hparams"]["baseline"], "epochs": EPOCHS}
    cm["hparams"] = {"baseline": base, "baseline_twin": {**base, "method": "baseline"}}
    cm["methods"] = ["baseline", "baseline_twin"]


def training_pids(script: str) -> list[int]:
    """Processes running a training script inside a Slurm job."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            environ = (proc / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if script in cmdline and "SLURM_JOB_ID=" in environ:
            pids.append(int(proc.name))
    return pids


def saved_epoch(state: Path) -> int:
    import torch

    try:
        return torch.load(state, weights_only=False)["epoch"] if state.is_file() else -1
    except Exception:  # being replaced right now
        return -1


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        c = slurm_cluster.start(tmp_path_factory.mktemp("slurm"))
    except slurm_cluster.Unavailable as exc:
        if os.environ.get("DEBIAS_REQUIRE_SLURM"):  # set by .ci/run, which installs Slurm first
            pytest.fail(f"Slurm test cluster unavailable although DEBIAS_REQUIRE_SLURM is set: {exc}")
        pytest.skip(f"Slurm test cluster unavailable: {exc}")
    yield c
    c.stop()


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    """The README's cluster command on a slice; kills the baseline's training process at epoch 3."""
    tmp = tmp_path_factory.mktemp("slurm_run")
    cfg = write_config(tmp, slurm_slice)
    res = tmp / "results"
    target = res / "tables/colored_mnist.csv"
    cmd = readme_cluster_command()
    assert cmd[:3] == ["snakemake", "--profile", "profiles/slurm"], cmd
    cmd = [a.replace("<account>", ACCOUNT).replace("<partition>", cluster.partition) for a in cmd]
    cmd = [sys.executable, "-m", "snakemake", str(target), *cmd[1:],
           "--slurm-status-command", "squeue",  # no accounting on the test cluster (README, "Cluster")
           "--slurm-init-seconds-before-status-checks", "2",
           "--slurm-logdir", str(tmp / "slurm_logs"),
           "--configfile", str(cfg)]
    log = open(tmp / "snakemake.log", "w")
    driver = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    state = res / "state/colored_mnist/sigma2=0.020/baseline/seed=0.pt"
    killed, deadline = [], time.time() + 600
    while time.time() < deadline and driver.poll() is None:
        if saved_epoch(state) >= KILL_AT_EPOCH:
            killed = kill_baseline_training()
            if killed:
                break
        time.sleep(0.2)
    try:
        rc = driver.wait(timeout=max(60, deadline - time.time()))
    except subprocess.TimeoutExpired:
        driver.kill()
        rc = "timeout"
    log.close()
    output = (tmp / "snakemake.log").read_text()
    assert rc == 0, f"snakemake on Slurm ended with {rc}:\n{output[-4000:]}\n{cluster.log_tail()}"
    return {"res": res, "killed": killed, "jobs": cluster.jobs(), "log": output}


def kill_baseline_training() -> list[int]:
    """SIGKILL the process training row `baseline` (not its twin): the one whose log file is the baseline's."""
    killed = []
    for pid in training_pids("colored_mnist_train.py"):
        try:
            fd1 = Path(f"/proc/{pid}/fd/1").resolve()
        except OSError:
            continue
        if fd1.parts[-2:] == ("baseline", "seed=0.log"):
            subprocess.run(["kill", "-9", str(pid)])
            killed.append(pid)
    return killed


def rule_of(job: dict) -> str:
    comment = job.get("Comment", "")
    return comment.removeprefix("rule_").split("_wildcards_")[0]


def test_slice_runs_to_the_end_on_slurm(slurm_run):
    res = slurm_run["res"]
    table = pd.read_csv(res / "tables/colored_mnist.csv")
    assert set(table.method) == {"baseline", "baseline_twin"} and (table.n_seeds == 1).all()
    assert (res / "figures/colored_mnist.png").stat().st_size > 1000
    rules = {rule_of(j) for j in slurm_run["jobs"]}
    assert {"mnist_embedded", "colored_mnist_prepare", "colored_mnist_train", "colored_mnist_table"} <= rules


def test_training_jobs_ask_for_a_gpu_and_the_others_do_not(slurm_run):
    jobs = [j for j in slurm_run["jobs"] if j.get("Comment", "").startswith("rule_")]
    assert jobs
    for j in jobs:
        gpus = j.get("TresPerJob", "")
        if rule_of(j) == "colored_mnist_train":
            assert gpus == "gres:gpu:1", j
            assert j.get("TimeLimit") == "00:30:00" and j.get("NumCPUs") == "1", j  # mini resources.train_small
        else:
            assert "gpu" not in gpus and "gpu" not in j.get("TresPerNode", ""), j


def test_sigkilled_job_is_resubmitted_and_resumes_to_the_same_metrics(slurm_run):
    assert slurm_run["killed"], "the baseline's training process was never seen running under Slurm"
    baseline = [j for j in slurm_run["jobs"] if rule_of(j) == "colored_mnist_train"
                and j["Comment"].endswith("_0.020_baseline_0")]
    assert sorted(j["JobState"] for j in baseline) == ["COMPLETED", "FAILED"], baseline
    runs = slurm_run["res"] / "runs/colored_mnist/sigma2=0.020"
    got = json.loads((runs / "baseline/seed=0/metrics.json").read_text())
    twin = json.loads((runs / "baseline_twin/seed=0/metrics.json").read_text())
    assert got["resumed_from_epoch"] >= KILL_AT_EPOCH
    assert twin.get("resumed_from_epoch") in (None, 0)
    assert got["metrics"] == twin["metrics"]
