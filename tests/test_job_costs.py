import pandas as pd
import pytest

from debias.job_costs import read_benchmark, write_job_costs

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def test_job_costs_table_from_snakemake_benchmark_files(tmp_path):
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    a.write_text(HEADER + "34.47\t0:00:34\t713.18\t900\t600\t650\t0.1\t2.0\t19.15\t6.78\n")
    b.write_text(HEADER + "1\t0:00:01\t10\t1\t1\t1\t0\t0\t50\t0.5\n" + "2.5\t0:00:02\t12\t1\t1\t1\t0\t0\t40\t1.5\n")
    out = tmp_path / "costs.csv"
    write_job_costs([str(b), str(a)], ["l2rw_mnist/share=0.990/l2rw", "colored_mnist/sigma2=0.020/lnl/all_seeds"], out)
    table = pd.read_csv(out)
    assert list(table.columns) == ["experiment", "job", "wall_s", "cpu_s", "max_rss_mb", "mean_load_pct"]
    assert table.experiment.tolist() == ["colored_mnist", "l2rw_mnist"]  # sorted by name
    assert table.iloc[0].tolist() == ["colored_mnist", "sigma2=0.020/lnl/all_seeds", 34.47, 6.78, 713.18, 19.15]
    assert table.iloc[1].tolist() == ["l2rw_mnist", "share=0.990/l2rw", 2.5, 1.5, 12.0, 40.0]  # last repeat


def test_a_file_that_is_not_a_benchmark_names_the_file_and_the_columns(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("seconds\tmemory\n1\t2\n")
    with pytest.raises(ValueError, match=r"bad\.tsv: not a Snakemake benchmark file.*missing \['s', 'cpu_time'"):
        read_benchmark(bad)
