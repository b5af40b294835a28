"""Workflow tier: dry-run DAG shape, bad configs rejected before any job, and end-to-end mini slices."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

import report_browser
from conftest import ROOT, job_counts, snakemake, write_config
from test_coco_workflow import tiny_coco


def test_full_config_dry_run_has_the_paper_grid():
    proc = snakemake("-n", "--forceall", "--cores", 8, "--resources", "gpu=2", "--quiet", "rules", check=True)
    counts = job_counts(proc.stdout)
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())["colored_mnist"]
    # rows trained from scratch (baseline, blindeye, gray) and rows starting from the baseline (lnl, lnl_adaptive)
    assert counts["colored_mnist_train"] == 7 * 3 * len(cfg["seeds"]) == 105
    assert counts["colored_mnist_train_from_init"] == 7 * 2 * len(cfg["seeds"]) == 70
    assert counts["colored_mnist_prepare"] == 7 and counts["colored_mnist_table"] == 1
    # reweighting: share x method jobs, each training all 10 seeds
    assert counts["fairface_train"] == 13 * 6 and counts["l2rw_mnist_train"] == 5 * 6
    assert counts["fairface_train_balanced"] == 1  # the balanced baseline (share 0.5, protocol D4)
    assert counts["fairface_split"] == 13 + 1 and counts["l2rw_mnist_split"] == 5


def test_mini_config_dry_run_batches_seeds_and_sigma2():
    proc = snakemake("-n", "--forceall", "--cores", 2, "--configfile", "config/mini.yaml", "--quiet", "rules",
                     check=True)
    counts = job_counts(proc.stdout)  # one per method: every sigma2 and seed in it
    assert counts["colored_mnist_train"] == 3 and counts["colored_mnist_train_from_init"] == 2


def test_training_jobs_declare_their_gpu_slots_and_aggregation_none(tmp_path):
    proc = snakemake("-n", "--forceall", "--cores", 8, "--resources", "gpu=2", "-p", check=True)
    blocks = proc.stdout.split("\nrule ")
    small = [b for b in blocks if b.startswith(("colored_mnist_train", "fairface_train", "l2rw_mnist_train"))]
    whole = [b for b in blocks if b.startswith("coco_train")]
    table = [b for b in blocks if b.startswith("colored_mnist_table")]
    # config: 4 slots per device; the small networks take one (and no whole GPU), ResNet-50 jobs all four
    assert small and all("gpu_slot=1," in b and "gpu=0," in b for b in small)
    assert whole and all("gpu_slot=4," in b and "gpu=1," in b for b in whole)
    assert table and all("gpu" not in b.split("resources:")[-1].split("\n")[0] for b in table)


# Peaks measured at the full config's real counts on stand-ins in the real formats (issue 27; max RSS in MiB, summed
# over the processes of coco_f1_leakage's job and its 8 workers), with the kind each rule's memory comes from.
MEASURED_PEAK_MIB = {
    "coco_prepare": ("prepare_photo", 6884), "waterbirds_prepare": ("prepare_photo", 2228),
    "colored_mnist_prepare": ("prepare", 996), "l2rw_mnist_pool": ("prepare", 826), "fairface_pool": ("prepare", 746),
    "l2rw_mnist_split": ("prepare", 645), "fairface_split": ("prepare", 647),
    "colored_mnist_table": ("aggregate", 781), "coco_dataset_leakage": ("aggregate", 756),
    "coco_f1_leakage": ("aggregate", 6465),
}


def test_jobs_ask_for_their_measured_peak_memory_with_room():
    """Every measured rule asks its kind's memory (coco_f1_leakage: one share per process, the job and each spawned
    worker), and that is at least 30 % above its measured peak."""
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    proc = snakemake("-n", "--forceall", "--cores", 8, "--resources", "gpu=2", "-p", check=True)
    asked = {}
    for block in proc.stdout.split("\nrule ")[1:]:
        mb, mib = (re.search(rf"resources: .*\b{key}=(\d+)", block) for key in ("mem_mb", "mem_mib"))
        if mb:  # rule all asks for none
            asked.setdefault(block.split(":", 1)[0], set()).add((int(mb.group(1)), int(mib.group(1))))
    workers = cfg["coco"]["f1_matched"]["workers"]
    for rule, (kind, peak_mib) in MEASURED_PEAK_MIB.items():
        processes = 1 + workers if rule == "coco_f1_leakage" else 1
        assert {mb for mb, _ in asked[rule]} == {processes * cfg["resources"][kind]["mem_mb"]}, (rule, asked[rule])
        assert all(mib >= 1.3 * peak_mib for _, mib in asked[rule]), (rule, asked[rule], peak_mib)


def test_bad_config_stops_before_any_job(tmp_path):
    path = write_config(tmp_path, lambda c: c["colored_mnist"]["sigma2"].append(0.07))
    i = len(yaml.safe_load(path.read_text())["colored_mnist"]["sigma2"]) - 1  # the appended value's index
    proc = snakemake("-n", "--cores", 1, "--configfile", path)
    assert proc.returncode != 0
    assert f"colored_mnist.sigma2[{i}]: 0.07 is not one of" in proc.stdout + proc.stderr
    # the message alone: no traceback, no Snakemake exception header (those come with --verbose)
    assert f"Error: invalid config:\n  config key colored_mnist.sigma2[{i}]" in proc.stderr
    assert 'File "' not in proc.stdout + proc.stderr and "ConfigError" not in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_missing_data_offline_stops_only_the_experiments_that_need_it(tmp_path):
    """Downloads off, COCO and Waterbirds (full-scale sections) absent: colored MNIST still runs; MNIST absent
    too: a colored-MNIST run stops before any job, naming the file (Snakemake) and the key (our warning)."""
    full = yaml.safe_load((ROOT / "config/config.yaml").read_text())

    def offline(cfg, mnist_missing):
        cfg["allow_download"] = False
        for exp in ("coco", "waterbirds"):
            cfg[exp] = full[exp]
        cfg["coco"].update(root=str(tmp_path / "nowhere/coco"), wang_dir=str(tmp_path / "nowhere/wang"))
        cfg["waterbirds"]["root"] = str(tmp_path / "nowhere/wb")
        if mnist_missing:
            cfg["mnist"] = {"source": "torchvision", "root": str(tmp_path / "nowhere/mnist")}

    proc = snakemake("colored_mnist", "-n", "--cores", 1, "--configfile",
                     write_config(tmp_path, lambda c: offline(c, False)), check=True)
    out = proc.stdout + proc.stderr
    assert job_counts(proc.stdout)["colored_mnist_train"] == 3
    assert "WARNING: config key coco.wang_dir and coco.root:" in out and "(coco, all)" in out
    assert "WARNING: config key waterbirds.root:" in out
    proc = snakemake("-n", "--cores", 1, "--configfile", write_config(tmp_path, lambda c: offline(c, False)))
    assert proc.returncode != 0 and "rule coco_prepare" in proc.stdout + proc.stderr
    assert "nowhere/wang/train.data" in proc.stdout + proc.stderr

    proc = snakemake("colored_mnist", "-n", "--cores", 1, "--configfile",
                     write_config(tmp_path, lambda c: offline(c, True)))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "colored_mnist_train" not in job_counts(proc.stdout)
    assert "WARNING: config key mnist.root:" in out and "(colored_mnist, reweighting, all)" in out
    assert "Missing input files for rule colored_mnist_prepare" in out
    assert "nowhere/mnist/MNIST/raw/train-images-idx3-ubyte" in out.split("Missing input files")[1]
    # the authors' colored-MNIST files are inputs of the prepare jobs too (no download exists for them)
    authors = write_config(tmp_path, lambda c: c["colored_mnist"].update(source="authors",
                                                                         authors_dir=str(tmp_path / "nowhere")))
    proc = snakemake("colored_mnist", "-n", "--cores", 1, "--configfile", authors)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "WARNING: config key colored_mnist.authors_dir:" in out
    assert "nowhere/mnist_10color_jitter_var_0.020.npy" in out.split("Missing input files for rule colored_mnist_prepare")[1]
    assert not (tmp_path / "results").exists()


def test_bad_fairface_csv_fails_its_job_with_the_message_first(tmp_path):
    """A data error inside a job script: the console shows the message (file, line, value) before Snakemake's
    report of the failed job, and the job log holds it without a traceback."""
    root = tmp_path / "fairface"
    root.mkdir()
    for split in ("train", "val"):
        (root / f"fairface_label_{split}.csv").write_text(
            "file,age,gender,race,service_test\ntrain/1.jpg,20-29,Male,Martian,True\n")

    def release(cfg):
        cfg["reweighting"]["fairface"].update(source="release", root=str(root))

    path = write_config(tmp_path, release)
    proc = snakemake(tmp_path / "results/prepared/fairface/pool.pt", "--cores", 1, "--configfile", path,
                     "--show-failed-logs")
    message = f"Error: {root}/fairface_label_train.csv, line 2: race 'Martian' is not one of White, Black"
    assert proc.returncode != 0
    out = proc.stderr
    assert message in out and out.index(message) < out.index("Error in rule fairface_pool")
    log = (tmp_path / "results/logs/fairface/pool.log").read_text()
    assert log.startswith(message) and "Traceback" not in log
    assert not (tmp_path / "results/prepared/fairface/pool.pt").exists()


def test_lint_passes():
    proc = snakemake("--lint", "--configfile", "config/mini.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def tiny(cfg, sigma2=(0.02, 0.05), methods=("baseline", "gray", "lnl"), seeds=(0,), epochs=1):
    cm = cfg["colored_mnist"]
    cm["sigma2"], cm["methods"], cm["seeds"] = list(sigma2), list(methods), list(seeds)
    for hp in cm["hparams"].values():
        hp["epochs"] = epochs


@pytest.mark.slow
def test_mini_slice_through_snakemake_builds_the_table(tmp_path):
    path = write_config(tmp_path, tiny)
    # the colored-MNIST target only: the other experiments run end to end in the whole-workflow test below
    snakemake("colored_mnist", "--cores", 2, "--configfile", path, check=True)
    res = tmp_path / "results"
    table = pd.read_csv(res / "tables/colored_mnist.csv")
    assert list(table.columns[:7]) == ["method", "sigma2", "acc_mean", "acc_std", "n_seeds", "paper", "delta"]
    assert len(table) == 6 and set(table.method) == {"baseline", "gray", "lnl"}
    assert table.acc_mean.between(0, 1).all() and (table.n_seeds == 1).all()
    row = table[(table.method == "gray") & (table.sigma2 == 0.02)].iloc[0]
    assert row.paper == 0.8374  # the difference column's formula: test_metrics_tables (hand-computed values)
    md = (res / "tables/colored_mnist.md").read_text()
    assert "| lnl |" in md and "σ²=0.020" in md
    assert (res / "tables/colored_mnist.tex").read_text().startswith(r"\begin{table}")
    for ext in ("png", "pdf"):
        assert (res / f"figures/colored_mnist.{ext}").stat().st_size > 1000
    rec = json.loads((res / "runs/colored_mnist/sigma2=0.020/lnl/seed=0/metrics.json").read_text())
    prepared = json.loads((res / "prepared/colored_mnist/sigma2=0.020.json").read_text())
    assert rec["data_sha256"] == {"data": prepared["sha256"]} and rec["init_from"].endswith("baseline/seed=0/model.pt")
    assert {"device_name", "torch", "git_commit", "steps_per_s", "peak_memory_mb", "wall_time_s"} <= set(rec)
    # the mini config's cpu_isa reached the job: PyTorch's and oneDNN's kernels capped at AVX2 (README, "Same numbers")
    assert rec["cpu_isa_env"] == {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert rec["cpu_capability"] != "AVX512"
    assert not list((res / "state").rglob("*.pt"))  # resumable state removed after success

    # editing one row's hyperparameters reruns that row's jobs (and the table) only
    cfg = yaml.safe_load(path.read_text())
    cfg["colored_mnist"]["hparams"]["lnl"]["entropy_weight"] = 0.02
    path.write_text(yaml.safe_dump(cfg))
    counts = job_counts(snakemake("colored_mnist", "-n", "--cores", 2, "--configfile", path, "--quiet", "rules",
                                  check=True).stdout)
    # mini: sigma2_per_job all, so lnl's one job (both sigma2) reruns, baseline's and gray's do not
    assert counts.get("colored_mnist_train_from_init") == 1 and "colored_mnist_train" not in counts
    assert "colored_mnist_prepare" not in counts


# Loaded by every Python process of a run (PYTHONPATH): after the real pin_gpus has taken its device, a job waits
# (holding it) until DEBIAS_TEST_MEET_COUNT jobs have taken theirs, so the test sees that many jobs on the fake GPUs
# at once however slow the machine. Each GPU job leaves "<device> met" (or "<device> alone", if it gave up after
# 120 s) in the meeting folder, in a file named by its arrival time.
MEET_AFTER_PINNING = """
import os, time
from pathlib import Path
import debias.devices as devices

_pin = devices.pin_gpus

def pin_then_meet(*args, **kw):
    chosen = _pin(*args, **kw)
    if not chosen:  # a job without a GPU (data preparation, tables)
        return chosen
    meet = Path(os.environ["DEBIAS_TEST_MEET_DIR"])
    mine = meet / f"{time.time_ns()}.{os.getpid()}"
    mine.write_text(",".join(chosen))
    deadline = time.monotonic() + 120
    while len(list(meet.iterdir())) < int(os.environ["DEBIAS_TEST_MEET_COUNT"]):
        if time.monotonic() > deadline:
            mine.write_text(",".join(chosen) + " alone")
            return chosen
        time.sleep(0.05)
    mine.write_text(",".join(chosen) + " met")
    return chosen

devices.pin_gpus = pin_then_meet
"""


def meeting_env(tmp_path, count):
    """Environment for a run whose GPU jobs meet ``count`` at a time (MEET_AFTER_PINNING), and the meeting folder."""
    hook, meet = tmp_path / "hook", tmp_path / "meet"
    hook.mkdir()
    meet.mkdir()
    (hook / "sitecustomize.py").write_text(MEET_AFTER_PINNING)
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])),
            "DEBIAS_TEST_MEET_DIR": str(meet), "DEBIAS_TEST_MEET_COUNT": str(count)}, meet


def arrivals(meet):
    """'<device> met|alone' of each GPU job, in the order they were pinned."""
    return [p.read_text() for p in sorted(meet.iterdir(), key=lambda p: int(p.name.split(".")[0]))]


@pytest.mark.slow
def test_four_gpu_jobs_with_two_gpus_never_share_a_device(tmp_path):
    def four_gpu_jobs(cfg):
        tiny(cfg, sigma2=(0.02,), methods=("baseline", "gray"), seeds=(0, 1), epochs=1)
        cfg["colored_mnist"]["seeds_per_job"] = 1
        cfg["resources"]["train_small"]["gpu"] = 1  # one slot per device (the default): a whole GPU per job

    path = write_config(tmp_path, four_gpu_jobs)
    meeting, meet = meeting_env(tmp_path, 2)
    # two fake GPUs: the jobs pin themselves through the lock files, and train on the CPU (config device: cpu)
    snakemake("colored_mnist", "--cores", 4, "--resources", "gpu=2", "--configfile", path, check=True,
              env={"DEBIAS_GPU_COUNT": "2", "CUDA_VISIBLE_DEVICES": "", "SLURM_JOB_ID": "", **meeting})
    order = arrivals(meet)
    assert len(order) == 4, order
    # the first two met while each held its device (the first waited for the second): two jobs at once, apart
    assert sorted(order[:2]) == ["0 met", "1 met"], order
    runs = [json.loads(p.read_text()) for p in (tmp_path / "results/runs").rglob("metrics.json")]
    assert len(runs) == 4 and {r["cuda_visible_devices"] for r in runs} == {"0", "1"}
    for i, a in enumerate(runs):  # any other two jobs that overlapped in training did so on different devices
        for b in runs[i + 1:]:
            if a["started_unix"] < b["finished_unix"] and b["started_unix"] < a["finished_unix"]:
                assert a["cuda_visible_devices"] != b["cuda_visible_devices"], (a["method"], a["seed"], b["seed"])
    for t in {r["started_unix"] + 1e-3 for r in runs}:  # never more than two at once (--resources gpu=2)
        assert sum(r["started_unix"] <= t < r["finished_unix"] for r in runs) <= 2


@pytest.mark.slow
def test_six_small_jobs_share_two_gpus_two_slots_each(tmp_path):
    def six_small_jobs(cfg):
        tiny(cfg, sigma2=(0.02,), methods=("baseline", "gray", "blindeye"), seeds=(0, 1), epochs=2)
        cfg["colored_mnist"]["seeds_per_job"] = 1
        cfg["resources"]["gpu_slots_per_device"] = 2
        cfg["resources"]["train_small"].update(gpu=1, gpu_slots=1)

    path = write_config(tmp_path, six_small_jobs)
    meeting, meet = meeting_env(tmp_path, 4)
    snakemake("colored_mnist", "--cores", 6, "--resources", "gpu=2", "--configfile", path, check=True,
              env={"DEBIAS_GPU_COUNT": "2", "CUDA_VISIBLE_DEVICES": "", "SLURM_JOB_ID": "", **meeting})
    order = arrivals(meet)
    assert len(order) == 6, order
    # the first four met while each held its slot: four small jobs at once, two on each device
    assert sorted(order[:4]) == ["0 met", "0 met", "1 met", "1 met"], order
    runs = [json.loads(p.read_text()) for p in (tmp_path / "results/runs").rglob("metrics.json")]
    assert len(runs) == 6 and {r["cuda_visible_devices"] for r in runs} == {"0", "1"}
    for t in {r["started_unix"] + 1e-3 for r in runs}:
        running = [r for r in runs if r["started_unix"] <= t < r["finished_unix"]]
        assert len(running) <= 4  # --resources gpu=2 x 2 slots
        for dev in ("0", "1"):  # never more jobs on one device than its slots
            assert sum(r["cuda_visible_devices"] == dev for r in running) <= 2, (t, dev)


@pytest.mark.slow
def test_sigkill_halfway_then_rerun_gives_the_same_numbers(tmp_path):
    def one_run(cfg):
        tiny(cfg, sigma2=(0.02,), methods=("baseline",), seeds=(0,), epochs=6)
        cfg["colored_mnist"]["seeds_per_job"] = 1

    target = "runs/colored_mnist/sigma2=0.020/baseline/seed=0/metrics.json"
    ref_dir, kill_dir = tmp_path / "ref", tmp_path / "kill"
    ref_dir.mkdir()
    kill_dir.mkdir()
    ref_cfg = write_config(ref_dir, one_run)
    # targets before --configfile, which takes every argument after it
    snakemake(str(ref_dir / "results" / target), "--cores", 1, "--configfile", ref_cfg, check=True)

    cfg = write_config(kill_dir, one_run)
    cmd = [sys.executable, "-m", "snakemake", str(kill_dir / "results" / target), "--workflow-profile", "none",
           "--cores", "1", "--configfile", str(cfg)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    state = kill_dir / "results/state/colored_mnist/sigma2=0.020/baseline/seed=0.pt"
    deadline = time.time() + 300
    while time.time() < deadline:
        if state.is_file():
            import torch

            try:
                if torch.load(state, weights_only=False)["epoch"] >= 3:
                    break
            except Exception:  # being replaced right now
                pass
        time.sleep(0.2)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("the training job never saved a state at epoch >= 3")
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the job, as a node failure would
    proc.wait()
    assert not (kill_dir / "results" / target).exists()
    snakemake("--unlock", "--cores", 1, "--configfile", cfg, check=True)
    snakemake(str(kill_dir / "results" / target), "--cores", 1, "--rerun-incomplete", "--configfile", cfg,
              check=True)
    ref = json.loads((ref_dir / "results" / target).read_text())
    got = json.loads((kill_dir / "results" / target).read_text())
    assert got["resumed_from_epoch"] >= 3
    assert got["metrics"] == ref["metrics"]


def tiny_reweighting(cfg):
    rw = cfg["reweighting"]
    rw["methods"], rw["seeds"] = ["baseline", "hardmining", "l2rw"], [0, 1]
    rw["fairface"]["shares"] = [0.6, 0.91]
    rw["l2rw_mnist"]["shares"] = [0.99]
    for exp in ("fairface", "l2rw_mnist"):
        for hp in rw[exp]["hparams"].values():
            hp["steps"] = 8


def tiny_waterbirds(cfg):
    wb = cfg["waterbirds"]
    wb["embedded"].update(n_train=200, n_val=80, n_test=80)
    wb["seeds"], wb["epsilon_percentiles"] = [0], [50]
    for hp in wb["hparams"].values():
        hp["epochs"] = 2
    # fisher_flat: one warm-up epoch, two constrained (with per-sample multipliers the first constrained epoch is
    # still ERM's and not selectable)
    wb["hparams"]["fisher_flat"]["epochs"] = 3


def tiny_matrix(cfg):
    """Three methods (lnl: an n/a cell on FairFace), one seed, the shortest schedules."""
    mx = cfg["matrix"]
    mx["methods"], mx["seeds"] = ["baseline", "groupdro", "lnl"], [0]
    mx["hparams"] = {m: e for m, e in (mx.get("hparams") or {}).items() if m in mx["methods"]}
    for entry in mx["datasets"].values():
        if "steps" in entry["schedule"]:
            entry["schedule"]["steps"] = 8
        else:
            entry["schedule"]["epochs"] = 1


def tiny_everything(cfg):
    tiny(cfg, sigma2=(0.02,), methods=("baseline",), seeds=(0,), epochs=1)
    tiny_reweighting(cfg)
    tiny_coco(cfg)
    tiny_waterbirds(cfg)
    tiny_matrix(cfg)
    cfg["benchmark"] = {**cfg["benchmark"], "warmup": 0, "repeats": 1}


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory):
    """A small whole run (every experiment, the benchmarks) and its report, shared by the two tests below."""
    tmp = tmp_path_factory.mktemp("whole_run")
    path = write_config(tmp, tiny_everything)
    res = tmp / "results"
    snakemake("--cores", 2, "--configfile", path, check=True)
    snakemake("--configfile", path, "--report", res / "report.html", check=True)
    # the report of one target (as the README suggests after a partial run): a single category, which Snakemake's
    # menu shows as "Results" instead of the category's name
    snakemake("colored_mnist", "--configfile", path, "--report", res / "report_colored_mnist.html", check=True)
    return res


@pytest.mark.slow
def test_whole_workflow_on_a_slice_builds_figures_tables_and_the_report(whole_run):
    res = whole_run
    table = pd.read_csv(res / "tables/fairface_reweighting.csv")
    assert set(table.columns) >= {"share", "method", "split", "acc_mean", "acc_std", "n_seeds", "acc_white_mean",
                                  "acc_poc_mean", "balanced_acc_mean"}
    # 2 shares x 3 methods x 2 splits, and the balanced baseline (share 0.5) on both splits
    assert len(table) == 2 * 3 * 2 + 2 and (table.n_seeds == 2).all()
    assert set(table[table.share == 0.5].method) == {"baseline"}
    for split in ("train", "test"):
        for band in ("60-90", "91-99"):
            for kind in ("acc", "per_class"):
                for ext in ("png", "pdf"):
                    assert (res / f"figures/fairface_{split}_{kind}_{band}.{ext}").stat().st_size > 1000
    md = (res / "tables/l2rw_mnist.md").read_text()
    assert "| l2rw |" in md and "p=0.99" in md
    # every table CSV has its Markdown beside it, and (but for the claims page) its LaTeX and HTML
    for csv in res.glob("tables/*.csv"):
        exts = ["md"] + ([] if csv.stem == "claims" else ["tex", "html"])
        assert all(csv.with_suffix(f".{e}").stat().st_size > 0 for e in exts), csv
    assert "| baseline, test |" in (res / "tables/fairface_reweighting.md").read_text()
    split = json.loads((res / "prepared/l2rw_mnist/share=0.990.json").read_text())
    assert split["counts_per_class"]["test"] == [100, 100] and split["counts_per_class"]["val"] == [5, 5]
    rec = json.loads((res / "runs/fairface/share=0.910/l2rw/seed=1/metrics.json").read_text())
    assert rec["steps"] == 8 and {"acc_white", "acc_poc"} <= set(rec["metrics"]["test"])

    # the benchmark tables: every registered method timed; one cost row per training job
    steps = pd.read_csv(res / "benchmarks/step_cost.csv")
    assert {"baseline", "l2rw", "lnl"} <= set(steps.method) and (steps.ms_per_step > 0).all()
    costs = pd.read_csv(res / "benchmarks/job_costs.csv")
    # one training job each: COCO (cells_per_job: all), colored MNIST (one method, all sigma2), FairFace's 3
    # methods and its balanced baseline, the grid's 3 methods, Waterbirds' erm, groupdro, fisher_flat (one ε)
    assert sorted(costs.experiment) == (["coco"] + ["colored_mnist"] + ["fairface"] * 4 + ["l2rw_mnist"] * 3
                                        + ["matrix"] * 4 + ["waterbirds"] * 3)  # the matrix: a job per dataset
    assert (costs.wall_s > 0).all() and (costs.max_rss_mb > 0).all()

    # the report holds every table (CSV) and figure (PNG) the run wrote, with a caption naming the paper
    html = (res / "report.html").read_text()
    made = [*res.glob("tables/*.csv"), *res.glob("tables/*.html"), *res.glob("figures/*.png"),
            *res.glob("benchmarks/*.csv")]
    # tables, each as CSV and HTML: colored MNIST, FairFace, L2RW grid + COCO's three + Waterbirds' table and traces;
    # figures: colored MNIST, FairFace's 4 + their 4 per-class companions, the L2RW grid + COCO's two (leakage per
    # split, F1-matched curves) + Waterbirds' groups and traces; the two benchmark tables; the claims' table and figure;
    # the matrix's table (CSV and HTML) and heatmap
    assert len(made) == 2 * (3 + 3 + 2) + 9 + 1 + 2 + 2 + 2 + 2 + 3
    for f in made:
        assert f'"name": "{f.name}"' in html, f
    assert "Learning Not to Learn (paper 003)" in html and "Example reweighting (paper 001)" in html
    assert "bias amplification (paper 000)" in html and "vs ERM and GroupDRO (paper 002)" in html

    # one label per entry, saying which table or figure of the paper it reproduces, distinct within a listing:
    # a second label with two values would become a toggle that hides entries (see report_label in common.smk)
    results = json.loads(re.search(r"var results = (\{.*?\});\s*</script>", html, re.S).group(1))
    categories = json.loads(re.search(r"var categories = (\{.*?\});\s*</script>", html, re.S).group(1))
    assert all(list(r["labels"]) == ["what"] for r in results.values()), [r["labels"] for r in results.values()]
    for listing in (paths for sub in categories.values() for paths in sub.values()):
        assert len({results[p]["labels"]["what"] for p in listing}) == len(listing), listing
    assert results[str(res / "figures/fairface_test_acc_91-99.png")]["labels"]["what"].startswith(
        "the paper's Figure 4: test accuracy")
    # each FairFace figure's caption says which split, share range and kind it shows
    captions = {Path(p).stem: r["caption"] for p, r in results.items() if Path(p).name.startswith("fairface_")
                and p.endswith(".png")}
    assert len(captions) == 8 and len(set(captions.values())) == 8
    assert "test split, White share 0.91–0.99: the paper" in captions["fairface_test_acc_91-99"]


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium, or a skip with the reason (a failure where DEBIAS_REQUIRE_BROWSER is set, as by .ci/run)."""
    try:
        return report_browser.find_chromium()
    except report_browser.Unavailable as exc:
        if os.environ.get("DEBIAS_REQUIRE_BROWSER"):
            pytest.fail(f"no browser although DEBIAS_REQUIRE_BROWSER is set: {exc}")
        pytest.skip(f"no browser for the report test: {exc}")


@pytest.mark.slow
def test_the_report_works_in_a_browser(chromium, whole_run, tmp_path):
    """Headless Chromium opens the report of the whole run and visits every view, category and entry: no console
    error or uncaught exception, every entry reachable from its listing, every image drawn with a non-zero size,
    every table downloaded byte for byte with a header and rows, every caption shown."""
    problems, visited = report_browser.walk_report(whole_run / "report.html", tmp_path / "downloads",
                                                   results_root=ROOT, binary=chromium)
    assert not problems, "\n".join(problems)
    made = [f for d in ("tables/*.csv", "tables/*.html", "figures/*.png", "benchmarks/*.csv")
            for f in whole_run.glob(d)]
    assert sorted(visited) == sorted(map(str, made))


@pytest.mark.slow
def test_the_report_of_one_target_works_in_a_browser(chromium, whole_run, tmp_path):
    """The same walk through the report of the `colored_mnist` target alone: one category, reached through the
    menu's "Results" item; every entry of that experiment and nothing else."""
    problems, visited = report_browser.walk_report(whole_run / "report_colored_mnist.html", tmp_path / "downloads",
                                                   results_root=ROOT, binary=chromium)
    assert not problems, "\n".join(problems)
    made = [*whole_run.glob("tables/colored_mnist*.csv"), *whole_run.glob("tables/colored_mnist*.html"),
            *whole_run.glob("figures/colored_mnist*.png")]
    assert made and sorted(visited) == sorted(map(str, made))
