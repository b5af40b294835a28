import pandas as pd

from debias import methods
from debias.benchmark import main


def test_benchmark_writes_every_method_with_its_ratio(tmp_path):
    out = tmp_path / "step_cost.csv"
    main(["--device", "cpu", "--warmup", "1", "--repeats", "2", "--threads", "1", "--out", str(out)])
    df = pd.read_csv(out)
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
