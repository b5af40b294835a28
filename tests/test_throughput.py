import copy
from pathlib import Path

import pytest
import torch
import yaml

from debias import throughput
from debias.throughput import MANUAL_OUT, RULE_OUT, cases_from_config, main, projection, run_cases

ROOT = Path(__file__).resolve().parents[1]


def full_config():
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_every_table_row_of_the_full_config_is_a_case_with_its_batch_size():
    cfg = full_config()
    cases = cases_from_config(cfg)
    configured = {(c.experiment, c.row): c for c in cases if c.variant == "as configured"}
    assert {r for e, r in configured if e == "colored_mnist"} == set(cfg["colored_mnist"]["methods"])
    for exp in ("fairface", "l2rw_mnist"):
        assert {r for e, r in configured if e == exp} == set(cfg["reweighting"]["methods"])
    assert {r for e, r in configured if e == "coco"} == set(cfg["coco"]["augmentations"])
    assert {r for e, r in configured if e == "waterbirds"} == set(cfg["waterbirds"]["methods"])
    assert configured[("colored_mnist", "lnl")].batch_size == 128
    assert configured[("fairface", "hardmining")].batch_size == 500  # the row's own batch size
    assert configured[("fairface", "l2rw")].batch_size == 100
    assert configured[("coco", "cutmix")].batch_size == 32 and configured[("coco", "cutmix")].channels_last
    assert configured[("waterbirds", "groupdro")].batch_size == 128
    # the network in words, from its task
    assert [configured[k].model for k in (("colored_mnist", "lnl"), ("fairface", "l2rw"), ("coco", "nomix"))] == [
        "conv net width 32", "LeNet width 16", "ResNet-50"]
    variants = {(c.experiment, c.variant) for c in cases}
    assert ("waterbirds", "trace: full") in variants
    assert ("coco", "whole network trains; batch 128") in variants
    assert ("colored_mnist", "torch.compile mode=reduce-overhead") in variants
    assert ("colored_mnist", "35 runs batched (torch.func)") in variants
    assert ("fairface", "130 runs batched (torch.func)") in variants
    assert ("coco", "whole network trains; deterministic off") in variants


def test_a_case_is_built_from_its_task_with_the_configured_image_sizes():
    """The network, the stored images and the training view are the task's, as a training job has them: COCO's
    stored images and their random crop (normalised), Waterbirds' stored crop fed in [0, 1] to a network that
    normalises, FairFace's image size; a batch smaller than the task trains is refused."""
    from dataclasses import replace

    from debias import tasks
    from debias.models import Normalize
    from debias.throughput import setup_case, synthetic_splits

    cfg = full_config()
    cfg["coco"]["image"] = {"short_side": 80, "stored": 72, "crop": 64}
    cfg["waterbirds"]["image"] = {"resize": 64, "crop": 48}
    cfg["reweighting"]["fairface"]["image_size"] = 32
    cases = {(c.experiment, c.row): c for c in cases_from_config(cfg) if c.variant == "as configured"}
    cpu = torch.device("cpu")
    for key, stored, crop in ((("coco", "nomix"), 72, 64), (("waterbirds", "erm"), 48, 48),
                              (("fairface", "l2rw"), 32, 32)):
        case = replace(cases[key], n_train=8, batch_size=4, channels_last=False)
        method, batch = setup_case(case, cpu)
        assert synthetic_splits(case, tasks.get(key[0]), cpu)["train"]["x"].shape[-1] == stored, key
        x = batch()["x"]
        assert x.shape[0] == 4 and x.shape[-2:] == (crop, crop) and x.dtype == torch.float32, (key, x.shape)
        assert (x.min() < 0) == (key[0] == "coco"), key  # COCO's view normalises; the others feed [0, 1]
        normalises = any(isinstance(m, Normalize) for m in method.modules.modules())
        assert normalises == (key[0] == "waterbirds"), key  # the task's network (Waterbirds': normalising first)
        assert method.predict(x).shape[0] == 4
    short = replace(cases[("coco", "nomix")], n_train=8, batch_size=1)
    (row,) = run_cases([short], cpu, seconds=0.1, warmup=1)
    assert row["status"] == "failed: ValueError: batch size 1: coco trains no batch under 2"


def test_projection_is_runs_times_steps_over_the_measured_rate():
    cfg = full_config()
    cfg["mnist"] = {"source": "embedded", "root": "x", "test_per_class": 100}  # 10 x 400 training digits
    cm = cfg["colored_mnist"]
    cm.update(sigma2=[0.02, 0.03], seeds=[0, 1, 2], methods=["baseline"])
    cm["train"]["batch_size"] = 100
    cm["hparams"] = {"baseline": {**cm["hparams"]["baseline"], "epochs": 4}}
    rw = cfg["reweighting"]
    rw.update(methods=["l2rw"], seeds=[0, 1])
    rw["fairface"].update(shares=[0.9, 0.95, 0.99], balanced_reference=[])
    rw["fairface"]["hparams"] = {"l2rw": {**rw["fairface"]["hparams"]["l2rw"], "steps": 72}}
    rows = [{"experiment": "colored_mnist", "row": "baseline", "variant": "as configured", "status": "ok",
             "steps_per_s": 8.0},
            {"experiment": "fairface", "row": "l2rw", "variant": "as configured", "status": "ok", "steps_per_s": 4.0},
            {"experiment": "fairface", "row": "l2rw", "variant": "deterministic off", "status": "ok",
             "steps_per_s": 1e9},
            {"experiment": "colored_mnist", "row": "baseline", "variant": "6 runs batched (torch.func)", "batch_runs": 6,
             "status": "ok", "steps_per_s": 48.0},
            {"experiment": "fairface", "row": "l2rw", "variant": "6 runs batched (torch.func)", "batch_runs": 6,
             "status": "failed: OutOfMemoryError", "steps_per_s": None}]
    proj = {(p["experiment"], p["row"], p["variant"]): p for p in projection(cfg, rows)}
    alone, batched = ("colored_mnist", "baseline", "one run at a time"), ("colored_mnist", "baseline", "6 runs batched")
    # 6 runs x (4 epochs x 40 steps) / 8 steps/s = 120 s, batched / 48 run-steps/s = 20 s; 6 runs x 72 steps / 4 = 108 s
    assert proj[alone]["runs"] == proj[batched]["runs"] == 6
    assert proj[alone]["steps_per_run"] == proj[batched]["steps_per_run"] == 160
    assert proj[alone]["projected_hours"] == pytest.approx(120 / 3600)
    assert proj[batched]["projected_hours"] == pytest.approx(20 / 3600)
    assert proj[("fairface", "l2rw", "one run at a time")]["projected_hours"] == pytest.approx(108 / 3600)
    per_row = {k: v for k, v in proj.items() if k[1] != "(whole table)"}
    assert len(per_row) == 3  # no projection from a variant that is neither (deterministic off), a failed case,
    # or a row never measured (the L2RW grid)
    # whole tables: colored MNIST 120 s alone, 20 s at its fastest; FairFace's one row has one variant; the L2RW grid,
    # whose row was never measured, gets none
    whole = {(k[0], k[2]): v for k, v in proj.items() if k[1] == "(whole table)"}
    assert set(whole) == {(e, v) for e in ("colored_mnist", "fairface")
                          for v in ("every row one run at a time", "every row at its fastest variant")}
    assert whole["colored_mnist", "every row one run at a time"]["projected_hours"] == pytest.approx(120 / 3600)
    assert whole["colored_mnist", "every row at its fastest variant"]["projected_hours"] == pytest.approx(20 / 3600)
    assert whole["fairface", "every row at its fastest variant"]["projected_hours"] == pytest.approx(108 / 3600)
    assert whole["colored_mnist", "every row one run at a time"]["runs"] == 6


def test_a_whole_table_sums_its_rows_and_needs_every_row():
    cfg = full_config()
    rw = cfg["reweighting"]
    rw.update(methods=["baseline", "l2rw"], seeds=[0, 1])
    rw["fairface"].update(shares=[0.9, 0.99], balanced_reference=["baseline"])  # baseline: 3 x 2 runs, l2rw: 2 x 2
    for row, steps in (("baseline", 100), ("l2rw", 50)):
        rw["fairface"]["hparams"][row] = {**rw["fairface"]["hparams"][row], "steps": steps}
    del cfg["colored_mnist"]

    def rate(row, steps_per_s, k=1):
        return {"experiment": "fairface", "row": row, "status": "ok", "steps_per_s": steps_per_s,
                **({"variant": "as configured"} if k == 1 else {"variant": f"{k} runs batched", "batch_runs": k})}

    def whole(rows):
        return {p["variant"]: p for p in projection(cfg, rows) if p["row"] == "(whole table)"}

    # baseline 6 runs x 100 steps at 10/s = 60 s, batched at 60/s = 10 s; l2rw 4 x 50 at 5/s = 40 s
    got = whole([rate("baseline", 10.0), rate("baseline", 60.0, k=6), rate("l2rw", 5.0)])
    assert got["every row one run at a time"]["projected_hours"] == pytest.approx(100 / 3600)
    assert got["every row at its fastest variant"]["projected_hours"] == pytest.approx(50 / 3600)
    assert got["every row one run at a time"]["runs"] == 10
    assert whole([rate("baseline", 10.0), rate("baseline", 60.0, k=6)]) == {}  # l2rw unmeasured: no whole table


def test_a_small_case_is_measured_and_a_failing_one_is_reported_not_raised():
    cfg = yaml.safe_load((ROOT / "config" / "mini.yaml").read_text())
    case = next(c for c in cases_from_config(cfg) if (c.experiment, c.row) == ("fairface", "baseline"))
    broken = copy.copy(case)
    broken.hp = {k: v for k, v in case.hp.items() if k != "lr"}  # the method cannot be built
    rows = run_cases([case, broken], torch.device("cpu"), seconds=0.2, warmup=2)
    ok, bad = rows
    assert ok["status"] == "ok" and ok["steps_timed"] >= 1
    assert ok["images_per_s"] == pytest.approx(ok["steps_per_s"] * 100)
    assert ok["ms_per_step"] == pytest.approx(1000 / ok["steps_per_s"])
    assert ok["gpu_util_pct"] is None and ok["device"].startswith("cpu")
    assert bad["status"].startswith("failed: KeyError") and "steps_per_s" not in bad


def test_the_batched_case_counts_every_run_it_advances():
    cfg = yaml.safe_load((ROOT / "config" / "mini.yaml").read_text())
    cases = [c for c in cases_from_config(cfg) if c.batch_runs > 1]
    runs = len(cfg["colored_mnist"]["seeds"]) * len(cfg["colored_mnist"]["sigma2"])
    ff_runs = len(cfg["reweighting"]["seeds"]) * len(cfg["reweighting"]["fairface"]["shares"])  # a share's seeds
    assert [(c.experiment, c.method, c.batch_runs) for c in cases] == [
        *[("colored_mnist", row, runs) for row in cfg["colored_mnist"]["methods"]], ("fairface", "baseline", ff_runs),
        ("fairface", "l2rw", ff_runs)]
    for case, row in zip(cases, run_cases(cases, torch.device("cpu"), seconds=0.3, warmup=2)):
        assert row["status"] == "ok" and row["variant"] == f"{case.batch_runs} runs batched (torch.func)"
        # steps_per_s counts run-steps; ms_per_step is one batched step, which advances batch_runs runs
        assert row["ms_per_step"] == pytest.approx(1000 * case.batch_runs / row["steps_per_s"])
        assert row["images_per_s"] == pytest.approx(row["steps_per_s"] * case.batch_size)


def test_hand_runs_never_write_the_rules_output(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--config", str(ROOT / "config" / "mini.yaml"), "--out", str(tmp_path / RULE_OUT)])
    assert "pipeline's output" in capsys.readouterr().err
    assert not (tmp_path / RULE_OUT).exists()
    assert Path(MANUAL_OUT).parts[-2:] != Path(RULE_OUT).parts


def test_hand_run_writes_both_files(tmp_path, monkeypatch):
    def fake_measure(case, device, seconds, warmup):
        return {"steps_per_s": 10.0, "images_per_s": 10.0 * case.batch_size, "ms_per_step": 100.0,
                "peak_memory_mb": 1.0, "gpu_util_pct": None, "steps_timed": 10}

    monkeypatch.setattr(throughput, "measure", fake_measure)
    out = tmp_path / "t.csv"
    main(["--config", str(ROOT / "config" / "mini.yaml"), "--only", "fairface", "--compiled", "without", "--device", "cpu",
          "--out", str(out)])
    lines = out.read_text().splitlines()
    assert lines[0].split(",")[:3] == ["experiment", "row", "method"]
    assert len(lines) == 1 + 6 + 3  # six rows as configured, deterministic off, baseline and l2rw batched
    proj = (tmp_path / "t_projection.csv").read_text().splitlines()
    ff = yaml.safe_load((ROOT / "config" / "mini.yaml").read_text())["reweighting"]
    runs = (len(ff["fairface"]["shares"]) + 1) * len(ff["seeds"])  # every share and the balanced 0.5, every seed
    # each row at one run at a time, the two rows measured batched, the whole table at one run at a time and at
    # each row's fastest variant
    assert len(proj) == 1 + 6 + 2 + 2
    table_runs = runs + 5 * len(ff["fairface"]["shares"]) * len(ff["seeds"])  # the balanced 0.5 is baseline's only
    assert proj[-1].startswith(f"fairface,(whole table),every row at its fastest variant,{table_runs},,,")
    assert proj[1].startswith(f"fairface,baseline,one run at a time,{runs},144,10.0000,")
    batched = len(ff["fairface"]["shares"]) * len(ff["seeds"])  # every share's seeds in one batched model
    assert proj[2].startswith(f"fairface,baseline,{batched} runs batched,{runs},144,10.0000,")


def test_gpu_utilisation_is_read_from_the_device_torch_uses_not_nvmls_same_index():
    """A job pinned to physical GPU 2 sees it as torch's device 0; NVML counts physical devices, so the sampler
    must find it by UUID (NVML's with a GPU- prefix), not by torch's index."""
    from types import SimpleNamespace

    from debias.throughput import nvml_handle

    uuids = ["GPU-aaaa-0", "GPU-bbbb-1", b"GPU-cccc-2"]  # older NVML bindings return bytes
    nvml = SimpleNamespace(nvmlDeviceGetCount=lambda: 3, nvmlDeviceGetHandleByIndex=lambda i: f"handle{i}",
                           nvmlDeviceGetUUID=lambda h: uuids[int(h[-1])])
    assert nvml_handle(nvml, "cccc-2", 0) == "handle2"
    assert nvml_handle(nvml, "GPU-BBBB-1", 0) == "handle1"
    assert nvml_handle(nvml, "dddd-9", 0) == "handle0"  # not found: torch's index, as before


def test_a_packed_process_uses_a_small_jobs_threads_not_every_core(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_measure(case, device, seconds, warmup):
        seen["threads"] = torch.get_num_threads()
        return {"steps_per_s": 1.0}

    cfg = yaml.safe_load((ROOT / "config" / "mini.yaml").read_text())
    cfg.setdefault("resources", {}).setdefault("train_small", {})["threads"] = 3
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    monkeypatch.setattr(throughput, "measure", fake_measure)
    before = torch.get_num_threads()
    try:
        main(["--config", str(path), "--case", "fairface/baseline", "--device", "cpu", "--json", "--start-at", "0"])
    finally:
        torch.set_num_threads(before)
    assert seen["threads"] == 3
    assert '"steps_per_s": 1.0' in capsys.readouterr().out
