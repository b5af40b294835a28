"""What the tables call a run's scale: "full" or "mini" only when the run's protocol is that of the shipped config
(config/config.yaml, config/mini.yaml), "custom" otherwise.

The protocol is every key of the config but those that change where things are, what runs them or how fast,
never the numbers a table shows (paths, devices, downloads, resources, job packing, checkpoints, kernels):
``NOT_PROTOCOL``. A user's copy of config.yaml with one epoch or other weights is "custom"; the same config with
other data roots on another cluster is still "full". Torch-free: the Snakefile calls it while it builds the DAG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SHIPPED = {"full": "config/config.yaml", "mini": "config/mini.yaml"}  # relative to the repository root
# keys, at any depth, that are not part of the protocol
NOT_PROTOCOL = frozenset({
    "scale", "results", "device", "allow_download", "cpu_isa", "resources", "benchmark",  # the run's machine
    "root", "authors_dir", "wang_dir", "image_dirs", "mirrors", "download",  # where the data are, and from where
    "seeds_per_job", "sigma2_per_job", "shares_per_job", "cells_per_job", "batch_runs", "workers",  # job packing
    "checkpoint_every_s", "channels_last", "compile", "deterministic", "eval_batch_size",  # speed, not numbers
})


def differences(config: Any, shipped: Any, where: str = "") -> list[str]:
    """The protocol keys (dotted) whose values differ between ``config`` and ``shipped``."""
    if isinstance(config, dict) and isinstance(shipped, dict):
        out = []
        for key in sorted(set(config) | set(shipped), key=str):
            if key in NOT_PROTOCOL:
                continue
            path = f"{where}.{key}" if where else str(key)
            if key not in config or key not in shipped:
                out.append(path)
            else:
                out += differences(config[key], shipped[key], path)
        return out
    return [] if config == shipped else [where or "<top level>"]


def shipped_config(config: dict[str, Any], repo: str | Path) -> dict[str, Any]:
    """The shipped config of ``config``'s scale."""
    return yaml.safe_load((Path(repo) / SHIPPED[config["scale"]]).read_text())


def scale_label(config: dict[str, Any], repo: str | Path,
                shipped: dict[str, Any] | None = None) -> tuple[str, list[str]]:
    """(label, differing keys): config["scale"] where the protocol equals its shipped config's (``shipped``, read
    from ``repo`` when not given), else "custom"."""
    diff = differences(config, shipped_config(config, repo) if shipped is None else shipped)
    return ("custom" if diff else config["scale"]), diff
