# Config validation (before any job starts), shared paths and resources.
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir).parent / "src"))

from debias.config import ConfigError as _ConfigError
from debias.config import check as _check_config
from debias.jobs import VERBOSE_ENV as _VERBOSE_ENV

# `snakemake --verbose` also gives job scripts their tracebacks (debias.jobs.start_job reads this variable)
if getattr(getattr(workflow, "output_settings", None), "verbose", False):
    os.environ[_VERBOSE_ENV] = "1"

try:
    _check_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml")
except _ConfigError as _err:
    if os.environ.get(_VERBOSE_ENV):
        raise
    # the message alone (it names every key and what was expected); the traceback under --verbose
    raise SystemExit(f"Error: {_err}")

RESULTS = config["results"]
BENCH_JOBS = f"{RESULTS}/benchmarks/jobs"  # Snakemake's benchmark file of every training job
SRC = str(Path(workflow.basedir).parent / "src")


SCHEDULER_KEYS = ("slurm_partition", "gres", "gpu_model", "constraint", "qos", "cpus_per_gpu", "slurm_extra")


def res(kind):
    """Resources of one kind of job (train, prepare, aggregate) as the config gives them.

    mem_mb and runtime always, `gpu` only where the kind asks for one, and the Slurm keys as given; a `gres`
    request replaces `gpu` (the Slurm plugin rejects both together).
    """
    r = config["resources"][kind]
    out = {"mem_mb": r["mem_mb"], "runtime": r["runtime"]}
    out.update({k: r[k] for k in SCHEDULER_KEYS if k in r})
    if r.get("gpu", 0) > 0 and "gres" not in r:
        out["gpu"] = r["gpu"]
    return out


def threads_of(kind):
    return config["resources"][kind]["threads"]


def report_label(what):
    """The labels of a report entry: one only, `what`, which says what the entry is and which table or figure of
    the paper it reproduces. One label, not several: Snakemake's report (9.27) turns any label after the first
    that has exactly two values, each on half of the listed entries, into a toggle, and then cannot show the
    entries of the value not toggled (the listing raises and the page goes blank). With one label no listing,
    search results included, can have such a toggle."""
    return {"what": what}


wildcard_constraints:
    sigma2=r"\d\.\d{3}",
    method=r"[A-Za-z0-9_]+",
    seed=r"\d+",
