# Config validation (before any job starts), shared paths and resources.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir).parent / "src"))

from debias.config import check as _check_config

_check_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml")

RESULTS = config["results"]
SRC = str(Path(workflow.basedir).parent / "src")


def res(kind):
    """Resources of a rule kind from the config; `gpu` only where the kind asks for one."""
    r = config["resources"][kind]
    out = {"mem_mb": r["mem_mb"], "runtime": r["runtime"]}
    if r.get("gpu", 0) > 0:
        out["gpu"] = r["gpu"]
    return out


def threads_of(kind):
    return config["resources"][kind]["threads"]


wildcard_constraints:
    sigma2=r"\d\.\d{3}",
    method=r"[A-Za-z0-9_]+",
    seed=r"\d+",
