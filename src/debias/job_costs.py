"""What each training job cost: Snakemake's per-job benchmark files gathered into one table.

Snakemake measures every job that declares ``benchmark:`` (wall time, CPU time, peak resident memory of the
job's process tree) and writes one tab-separated file per job. ``write_job_costs`` turns those files into
``benchmarks/job_costs.csv``: one row per job, named by the file's path below the benchmark folder
(``<experiment>/<cell>``), e.g. ``colored_mnist/sigma2=0.020/lnl/all_seeds``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from debias.io import write_text

COLUMNS = {"s": "wall_s", "cpu_time": "cpu_s", "max_rss": "max_rss_mb", "mean_load": "mean_load_pct"}


def read_benchmark(path: str | Path) -> dict:
    """One Snakemake benchmark file -> {wall_s, cpu_s, max_rss_mb, mean_load_pct} (the last repeat)."""
    table = pd.read_csv(path, sep="\t")
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing or table.empty:
        raise ValueError(f"{path}: not a Snakemake benchmark file (expected tab-separated columns "
                         f"{list(COLUMNS)}, {'missing ' + str(missing) if missing else 'but no rows'})")
    row = table.iloc[-1]
    return {new: float(row[old]) if row[old] != "-" else float("nan") for old, new in COLUMNS.items()}


def write_job_costs(paths: list[str], names: list[str], out: str | Path) -> pd.DataFrame:
    """One row per benchmark file; ``names[i]`` is file i's path below the benchmark folder, without suffix."""
    rows = []
    for path, name in sorted(zip(paths, names), key=lambda pn: pn[1]):
        experiment, _, job = name.partition("/")
        rows.append({"experiment": experiment, "job": job, **read_benchmark(path)})
    table = pd.DataFrame(rows, columns=["experiment", "job", *COLUMNS.values()])
    write_text(out, table.to_csv(index=False, float_format="%.3f"))
    return table
