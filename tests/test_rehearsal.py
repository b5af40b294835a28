"""Rehearsal of the full config: config/config.yaml on stand-ins of every dataset it reads
(tools/rehearsal/make_standins.py: the real layouts and group proportions, small counts), overridden only in the
data roots (the stand-ins' roots.yaml), the schedule and the device (tools/rehearsal/rehearsal.yaml), through
Snakemake: every prepare rule, one training job of every experiment and the rules downstream of them that they
feed, and a dry run of the whole DAG. Marked ``rehearsal`` (``pytest -m rehearsal``)."""

import json
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from conftest import ROOT, job_counts, snakemake

pytestmark = pytest.mark.rehearsal

FULL = yaml.safe_load((ROOT / "config/config.yaml").read_text())
REHEARSAL = ROOT / "tools/rehearsal/rehearsal.yaml"
GENERATOR = ROOT / "tools/rehearsal/make_standins.py"
sys.path.insert(0, str(ROOT / "tools/rehearsal"))
import real_counts  # noqa: E402

# the one training job of each experiment (a FairFace or L2RW job trains every seed of its share and method)
CM_RUN = "colored_mnist/sigma2=0.020/baseline/seed=0"
FF_RUN = "fairface/share=0.900/l2rw/seed=0"
L2_RUN = "l2rw_mnist/share=0.995/hardmining/seed=0"
WB_RUNS = [f"waterbirds/erm/default/seed={s}" for s in FULL["waterbirds"]["seeds"]]  # all three: the traces need them
COCO_CELL = "split=none/cutmix/pairing=balanced/lr=1e-03"
COCO_RUN = f"coco/{COCO_CELL}/seed={FULL['coco']['seeds'][0]}"
MX_RUNS = [f"matrix/fairface/l2rw/seed={s}" for s in FULL["matrix"]["seeds"]]  # one matrix job: its share's split


def rehearse(standins, results, *args, **kw):
    """snakemake ``args`` (targets first) on the full config, the stand-ins' roots and the rehearsal schedule."""
    return snakemake(*args, "--configfile", "config/config.yaml", standins / "roots.yaml", REHEARSAL,
                     "--config", f"results={results}", **kw)


def prepare_targets(r) -> list[str]:
    """One output of every prepare job of the full config, and of the jobs that read only prepared labels."""
    rw, coco = FULL["reweighting"], FULL["coco"]
    out = [f"{r}/prepared/colored_mnist/sigma2={s:.3f}.pt" for s in FULL["colored_mnist"]["sigma2"]]
    for exp in ("fairface", "l2rw_mnist"):
        shares = rw[exp]["shares"] + ([0.5] if rw[exp].get("balanced_reference") else [])
        out += [f"{r}/prepared/{exp}/share={s:.3f}.pt" for s in shares]
    out += [f"{r}/prepared/waterbirds/data.pt", f"{r}/prepared/coco/data.pt"]
    out += [f"{r}/leakage/coco/dataset/split={s}.json" for s in coco["splits"]]
    out += [f"{r}/leakage/coco/f1_curve/{mode}.json" for mode in coco["f1_matched"]["attackers"]]
    return out


def training_targets(r) -> list[str]:
    runs = [CM_RUN, FF_RUN, L2_RUN, *WB_RUNS, COCO_RUN, *MX_RUNS]
    return ([f"{r}/runs/{run}/metrics.json" for run in runs] + [f"{r}/tables/waterbirds_traces.csv"]
            + [f"{r}/leakage/coco/model/{COCO_CELL}/seed={FULL['coco']['seeds'][0]}.json"])


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    out = tmp_path_factory.mktemp("standins")
    t0 = time.monotonic()
    subprocess.run([sys.executable, str(GENERATOR), str(out)], check=True, capture_output=True, text=True,
                   timeout=900)
    print(f"\nstand-ins written in {time.monotonic() - t0:.0f} s")
    return out


@pytest.fixture(scope="module")
def rehearsal(standins, tmp_path_factory):
    results = tmp_path_factory.mktemp("rehearsal") / "results"
    t0 = time.monotonic()
    proc = rehearse(standins, results, *prepare_targets(results), *training_targets(results), "--cores", 3,
                    timeout=2400)
    print(f"\nrehearsal: {time.monotonic() - t0:.0f} s on 2 cores")
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return results, proc.stdout + proc.stderr


def test_full_counts_are_the_published_ones_as_the_readers_count_them(tmp_path):
    """``--counts full`` of the cheap datasets (11,788 Waterbirds images, MNIST's 70,000 digits): the readers'
    counts, Waterbirds' checked against the published table by its own check (check_counts)."""
    subprocess.run([sys.executable, str(GENERATOR), str(tmp_path), "--counts", "full", "--datasets", "waterbirds",
                    "mnist"], check=True, capture_output=True, text=True, timeout=600)
    read = {k: v["read_back"] for k, v in json.loads((tmp_path / "standins.json").read_text())["datasets"].items()}
    assert read["waterbirds"]["match_published"] is True and read["waterbirds"]["match_expected"] is True
    assert read["waterbirds"]["groups"] == real_counts.WATERBIRDS
    assert read["mnist"] == real_counts.MNIST
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist", "roots.yaml", "standins.json", "waterbirds"]


def test_the_rehearsal_changes_only_data_roots_schedule_and_device(standins):
    """Every key the two override files set, by kind: where the data is, how long each job runs, the device; and
    the attacker's sample sizes, the one change of another kind (rehearsal.yaml says why)."""
    from snakemake.utils import update_config

    merged = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    for f in (standins / "roots.yaml", REHEARSAL):
        update_config(merged, yaml.safe_load(f.read_text()))

    def leaves(d, prefix=()):
        for k, v in d.items():
            yield from leaves(v, (*prefix, k)) if isinstance(v, dict) else [((*prefix, k), v)]

    full = dict(leaves(FULL))
    changed = {".".join(k) for k, v in leaves(merged) if full.get(k, object()) != v}
    roots = {"allow_download", "mnist.root", "reweighting.fairface.root", "waterbirds.root", "coco.root",
             "coco.wang_dir", "pretrained.root", "coco.model.weights", "waterbirds.model.weights"}
    schedule = ({f"colored_mnist.hparams.{m}.epochs" for m in FULL["colored_mnist"]["hparams"]}
                | {f"reweighting.{e}.hparams.{m}.steps" for e in ("fairface", "l2rw_mnist")
                   for m in FULL["reweighting"][e]["hparams"]}
                | {f"waterbirds.hparams.{m}.epochs" for m in FULL["waterbirds"]["hparams"]}
                | {f"coco.hparams.{m}.epochs" for m in FULL["coco"]["hparams"]}
                | {"coco.leakage.epochs", "coco.leakage.rounds"}
                | {f"matrix.datasets.{d}.schedule.{k}" for d, e in FULL["matrix"]["datasets"].items()
                   for k in ("epochs", "steps") if k in e["schedule"]})
    sample_sizes = {"coco.leakage.n_train_per_group", "coco.leakage.n_eval_per_group"}
    assert changed == roots | schedule | sample_sizes | {"device"}


def test_dry_run_of_the_whole_full_config_on_the_standins_has_every_job_and_nothing_to_fetch(standins, tmp_path):
    proc = rehearse(standins, tmp_path / "results", "all", "-n", "--cores", 2, "--quiet", "rules", check=True)
    counts = job_counts(proc.stdout)
    counts.pop("total")
    cm, rw, coco, wb, mx = FULL["colored_mnist"], FULL["reweighting"], FULL["coco"], FULL["waterbirds"], FULL["matrix"]
    n_sigma2, n_seeds = len(cm["sigma2"]), len(cm["seeds"])
    rows_from_init = sum(1 for r in cm["methods"] if cm["hparams"][r].get("init_from"))
    assert counts == {
        "colored_mnist_prepare": n_sigma2,
        "colored_mnist_train": n_sigma2 * (len(cm["methods"]) - rows_from_init) * n_seeds,  # 7 x 3 x 5 = 105
        "colored_mnist_train_from_init": n_sigma2 * rows_from_init * n_seeds,  # 7 x 2 x 5 = 70
        "colored_mnist_table": 1,
        "fairface_pool": 1, "fairface_split": 13 + 1, "fairface_train": 13 * 6, "fairface_train_balanced": 1,
        "fairface_figures": 1,
        "l2rw_mnist_pool": 1, "l2rw_mnist_split": 5, "l2rw_mnist_train": 5 * 6, "l2rw_mnist_table": 1,
        "coco_prepare": 1, "coco_train": 26, "coco_dataset_leakage": len(coco["splits"]),
        "coco_model_leakage": 20 * len(coco["seeds"]), "coco_f1_leakage": 1, "coco_tables": 1,  # per model
        "waterbirds_prepare": 1, "waterbirds_train": (2 + len(wb["epsilon_percentiles"])) * len(wb["seeds"]),
        "waterbirds_table": 1, "waterbirds_traces": 1,
        "step_cost": 1, "throughput": 1, "job_costs": 1, "claims": 1, "all": 1,
        **{f"matrix_{d}": len(mx["methods"]) for d in mx["datasets"]}, "matrix_table": 1,  # a job per (dataset, method)
    }
    assert sum(counts.values()) == 371 + 20 * len(coco["seeds"]) + 4 * 16 + 1
    assert "WARNING" not in proc.stderr  # nothing missing: no data, weights or download named


def test_every_prepare_rule_of_the_full_config_runs_on_the_standins(rehearsal, standins):
    results, _ = rehearsal
    for target in prepare_targets(results):
        assert (results / target.removeprefix(f"{results}/")).stat().st_size > 0, target
    recipe = lambda path: json.loads((results / "prepared" / path).read_text())  # noqa: E731
    for s in FULL["colored_mnist"]["sigma2"]:
        assert recipe(f"colored_mnist/sigma2={s:.3f}.json")["counts"] == {"train": 60000, "test": 10000}
    ff = real_counts.counts("fairface", "small")
    pool = recipe("fairface/pool.json")["counts"]
    assert pool == {"train_y": sum(ff["train"].values()), "test_y": sum(ff["val"].values())}
    assert recipe("fairface/share=0.990.json")["counts_per_class"] == {"train": [36 - 5, 3564 - 5], "val": [5, 5],
                                                                        "test": [180, 180]}
    assert recipe("l2rw_mnist/share=0.995.json")["counts_per_class"] == {"train": [25 - 5, 4975 - 5], "val": [5, 5],
                                                                          "test": [250, 250]}
    wb = recipe("waterbirds/recipe.json")
    assert wb["counts"] == real_counts.counts("waterbirds", "small") and wb["counts_match_published"] is False
    assert wb["image"]["crop"] == FULL["waterbirds"]["image"]["crop"] == 224
    coco = recipe("coco/recipe.json")
    assert coco["source"] == "wang" and len(coco["columns"]) == 79
    assert {s: [c["man"], c["woman"]] for s, c in coco["counts"].items() if s in ("train", "val", "test")} == \
        real_counts.counts("coco", "small")
    for split in FULL["coco"]["splits"]:
        leak = json.loads((results / f"leakage/coco/dataset/split={split}.json").read_text())["results"]
        assert set(leak) == set(FULL["coco"]["leakage"]["attackers"])
        assert all(len(r["scores"]) == 2 for r in leak.values())  # the rehearsal's 2 rounds
    curve = json.loads((results / "leakage/coco/f1_curve/balanced.json").read_text())
    assert [p["rate"] for p in curve["points"]] == FULL["coco"]["f1_matched"]["flip_rates"]


def test_one_training_job_of_every_experiment_runs_on_the_standins(rehearsal, standins):
    results, _ = rehearsal
    weights = yaml.safe_load((standins / "roots.yaml").read_text())["coco"]["model"]["weights"]
    metrics = {run: json.loads((results / "runs" / run / "metrics.json").read_text())
               for run in [CM_RUN, FF_RUN, L2_RUN, *WB_RUNS, COCO_RUN]}
    assert all(m["device"] == "cpu" for m in metrics.values())
    assert metrics[CM_RUN]["hparams"]["epochs"] == 1 and metrics[CM_RUN]["model"]["width"] == 32
    # a reweighting job trains every seed of its share and method
    for run in (FF_RUN, L2_RUN):
        seeds = sorted((results / "runs" / run).parent.glob("seed=*/metrics.json"))
        assert len(seeds) == len(FULL["reweighting"]["seeds"])
        assert metrics[run]["hparams"]["steps"] == 2
    # the ResNet-50s start from the stand-in weights file
    for run in (*WB_RUNS, COCO_RUN):
        assert metrics[run]["model"] == {"arch": "resnet50", "weights": weights}
    assert metrics[COCO_RUN]["n_train"] == real_counts.counts("coco", "small")["train"][0] + \
        real_counts.counts("coco", "small")["train"][1]
    assert set(metrics[WB_RUNS[0]]["selections"]) == set(FULL["waterbirds"]["hparams"]["erm"]["select"])
    # the matrix's FairFace column reads the split of its own share, which its split job wrote
    for run in MX_RUNS:
        rec = json.loads((results / "runs" / run / "metrics.json").read_text())
        assert rec["status"] == "ok" and rec["steps"] == 2 and rec["task"] == "fairface"


def test_the_rules_downstream_of_those_jobs_run(rehearsal):
    results, _ = rehearsal
    leak = json.loads((results / f"leakage/coco/model/{COCO_CELL}/seed={FULL['coco']['seeds'][0]}.json").read_text())
    assert set(leak["results"]) == set(FULL["coco"]["leakage"]["attackers"]) and "logits" in leak["features"]
    traces = pd.read_csv(results / "tables/waterbirds_traces.csv")
    assert traces["n"].sum() == len(WB_RUNS) * sum(real_counts.counts("waterbirds", "small")["train"])
    assert (traces["seeds"] == len(WB_RUNS)).all()
