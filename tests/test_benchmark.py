from pathlib import Path

import pandas as pd
import pytest

from debias import methods
from debias import benchmark
from debias.benchmark import MANUAL_OUT, RULE_OUT, main

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_writes_every_method_with_its_ratio(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a hand run writes its own file, results/benchmarks/step_cost_manual.csv
    main(["--device", "cpu", "--warmup", "1", "--repeats", "2", "--threads", "1"])
    df = pd.read_csv(tmp_path / "results/benchmarks/step_cost_manual.csv")
    assert not (tmp_path / "results/benchmarks/step_cost.csv").exists()
    assert list(df.columns) == ["method", "model", "device", "batch_size", "ms_per_step", "ratio_to_baseline"]
    lenet = df[df.model == "l2rw_lenet"].set_index("method")
    assert lenet.loc["baseline", "ratio_to_baseline"] == 1.0
    # every method that does not need a bias head runs on the LeNet; every method runs on the LNL network
    assert set(methods.names()) - {"blindeye", "lnl", "lnl_adaptive"} <= set(lenet.index)
    assert set(methods.names()) <= set(df[df.model == "lnl_convnet"].method)
    assert "l2rw[meta_gradient=forward]" in set(lenet.index)
    assert "l2rw[meta_gradient=forward]" in set(df[df.model == "lnl_convnet"].method)  # a network with batch norm
    # the mini ResNet (the Waterbirds stand-in for ResNet-50) with the Waterbirds methods and the full-network trace
    resnet = set(df[df.model == "mini_resnet"].method)
    assert resnet == {"baseline", "erm", "groupdro", "fisher_flat", "fisher_flat[trace=full]"}
    assert (df.ms_per_step > 0).all()
    # a method that cannot run on a model is skipped with one line that says why
    skipped = [line for line in capsys.readouterr().err.splitlines() if " skipped" in line]
    assert skipped and all(len(line) < 250 for line in skipped)


def test_ratio_is_ms_over_the_lower_of_the_two_baseline_timings(tmp_path, monkeypatch):
    """Fake timings: on the LeNet, baseline 4 ms then 2 ms when timed again (2 kept), l2rw 5 ms, its forward
    variant 3 ms, the rest 1 ms; on the LNL network baseline 8 ms then 10 ms (8 kept), lnl 12 ms, the rest 8 ms."""
    calls = []

    def fake_time_steps(method, batch, device, warmup, repeats):
        lenet = batch["x"].shape[1] == 1
        calls.append((lenet, method.name))
        if method.name == "baseline":
            first = sum(c == (lenet, "baseline") for c in calls) == 1
            return (4.0 if first else 2.0) if lenet else (8.0 if first else 10.0)
        if lenet:
            if method.name == "l2rw":
                return 3.0 if method.hp.get("meta_gradient") == "forward" else 5.0
            return 1.0
        return 12.0 if method.name == "lnl" else 8.0

    monkeypatch.setattr(benchmark, "time_steps", fake_time_steps)
    out = tmp_path / "step_cost.csv"
    main(["--device", "cpu", "--threads", "1", "--out", str(out)])
    df = pd.read_csv(out)
    lenet = df[df.model == "l2rw_lenet"].set_index("method")
    convnet = df[df.model == "lnl_convnet"].set_index("method")
    # LeNet: baseline 2 ms (ratio 1); l2rw 5 / 2 = 2.5; forward 3 / 2 = 1.5; proportion 1 / 2 = 0.5
    assert lenet.loc["baseline", ["ms_per_step", "ratio_to_baseline"]].tolist() == [2.0, 1.0]
    assert lenet.loc["l2rw", "ratio_to_baseline"] == 2.5
    assert lenet.loc["l2rw[meta_gradient=forward]", "ratio_to_baseline"] == 1.5
    assert lenet.loc["proportion", "ratio_to_baseline"] == 0.5
    # LNL network: baseline 8 ms; lnl 12 / 8 = 1.5; blindeye 8 / 8 = 1
    assert convnet.loc["baseline", ["ms_per_step", "ratio_to_baseline"]].tolist() == [8.0, 1.0]
    assert convnet.loc["lnl", "ratio_to_baseline"] == 1.5 and convnet.loc["blindeye", "ratio_to_baseline"] == 1.0
