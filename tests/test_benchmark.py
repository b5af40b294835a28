from pathlib import Path

import pandas as pd
import pytest

from debias import methods
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
    assert (df.ms_per_step > 0).all()
    row = lenet.loc["l2rw"]
    assert abs(row.ratio_to_baseline - row.ms_per_step / lenet.loc["baseline", "ms_per_step"]) < 1e-3
    # a method that cannot run on a model is skipped with one line that says why
    skipped = [line for line in capsys.readouterr().err.splitlines() if " skipped" in line]
    assert skipped and all(len(line) < 250 for line in skipped)
    if "l2rw[meta_gradient=forward]" not in set(df[df.model == "lnl_convnet"].method):
        assert any(line.startswith("lnl_convnet: l2rw[meta_gradient=forward] skipped: forward mode") and
                   "BatchNorm" in line for line in skipped)


def test_benchmark_refuses_to_write_the_pipelines_file(tmp_path, capsys):
    out = tmp_path / "results/mini" / RULE_OUT
    with pytest.raises(SystemExit) as exit_:
        main(["--out", str(out), "--warmup", "0", "--repeats", "1", "--threads", "1"])  # short if it ran
    assert exit_.value.code == 2 and not out.exists()
    assert "that is the pipeline's output (rule step_cost)" in capsys.readouterr().err
    # the rule does write that path, and the hand run's default is not it
    assert f'{{RESULTS}}/{RULE_OUT}"' in (ROOT / "workflow/rules/benchmarks.smk").read_text()
    assert Path(MANUAL_OUT).parts[-2:] != Path(RULE_OUT).parts
