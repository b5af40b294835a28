"""Train the runs of one job (one table cell, one or several seeds) and write their outputs.

Per seed: seed the RNGs, build the backbone and the method, optionally start from another run's model,
``engine.fit`` with resumable state, then write ``model.pt`` and, last, ``metrics.json`` (both atomically)
and remove the resumable state.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from debias import methods
from debias.config import method_entry
from debias.engine import RunSpec, fit
from debias.determinism import configure as configure_determinism
from debias.io import sha256_file, torch_save, write_json
from debias.models import Backbone
from debias.provenance import environment

log = logging.getLogger(__name__)


@dataclass
class RunOutputs:
    seed: int
    metrics: Path
    model: Path
    state: Path
    init_model: Path | None = None


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def data_hashes(files: dict[str, str | Path]) -> dict[str, str]:
    """sha256 of every file a run's data comes from, by role (e.g. the image pool and the split indices)."""
    return {role: sha256_file(path) for role, path in files.items()}


def train_cell(
    *,
    experiment: str,
    variant: dict[str, Any],
    row: str,
    hparams: dict[str, Any],
    train_cfg: dict[str, Any],
    splits: dict[str, dict[str, torch.Tensor]] | Callable[[int], dict[str, dict[str, torch.Tensor]]],
    make_backbone: Callable[[], Backbone],
    model_cfg: dict[str, Any],
    runs: list[RunOutputs],
    data_sha256: dict[str, str],
    device: torch.device,
    group_names: dict[int, str] | None = None,
    progress: bool = True,
    group_weights: dict[int, float] | None = None,
    extra_record: Callable[[Any, RunOutputs], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Train ``row`` once per run (seed). ``data_sha256`` maps each data file's role to its sha256 and, with the
    method, its hyperparameters, ``train_cfg``, ``model_cfg``, the seed and the initial model's content, makes up
    the fingerprint a saved state must match to be resumed: a state made on other data or another network is
    never continued.

    Model selection: the row's ``select`` hyperparameter (a list of rules of ``engine.SELECTION_RULES``, default
    ``[last]``); the first rule's weights are the run's ``model.pt`` and ``metrics``, every rule's epoch and
    metrics go to ``selections`` in metrics.json. ``group_weights`` (e.g. the training split's group counts) add
    the weighted group accuracy to every evaluation. ``extra_record(method, run)`` adds keys to a run's record."""
    cls_name, hp = method_entry(row, hparams)
    cls = methods.get(cls_name)
    determinism = configure_determinism(train_cfg.get("deterministic", True))
    variant_id = "/".join(f"{k}={v}" for k, v in variant.items())
    results = []
    for run in runs:
        t_start, started_unix = time.monotonic(), time.time()
        torch.manual_seed(run.seed)
        method = cls(make_backbone(), hp).to(device)
        if train_cfg.get("channels_last"):
            method.modules.to(memory_format=torch.channels_last)
        method.compile(train_cfg.get("compile", "none"))
        init_sha256 = None
        if run.init_model is not None:
            init_sha256 = sha256_file(run.init_model)
            method.init_from(torch.load(run.init_model, map_location=device, weights_only=True))
        spec = RunSpec(
            run_id=f"{experiment}/{variant_id}/{row}/seed={run.seed}",
            seed=run.seed,
            epochs=hp.get("epochs"),
            max_steps=hp.get("steps"),
            batch_size=hp.get("batch_size", train_cfg["batch_size"]),
            state_path=run.state,
            eval_every=train_cfg["eval_every"],
            checkpoint_every_s=train_cfg["checkpoint_every_s"],
            channels_last=train_cfg.get("channels_last", False),
            group_names=group_names or {},
            fingerprint=fingerprint(cls_name, hp, train_cfg, model_cfg, data_sha256, run.seed, init_sha256),
            progress=progress,
            group_weights=group_weights or {},
            select=tuple(hp.get("select", ["last"])),
            eval_splits=tuple(train_cfg["eval_splits"]) if train_cfg.get("eval_splits") else None,
            eval_batch_size=train_cfg.get("eval_batch_size", 1000),
        )
        out = fit(method, splits(run.seed) if callable(splits) else splits, spec)
        torch_save(method.model_state(), run.model)
        record = {
            "experiment": experiment,
            "variant": variant,
            "method": row,
            "method_class": cls_name,
            "hparams": hp,
            "train": train_cfg,
            "model": model_cfg,
            "seed": run.seed,
            "init_from": str(run.init_model) if run.init_model else None,
            "init_sha256": init_sha256,
            "data_sha256": data_sha256,
            "determinism": determinism,
            "metrics": out["metrics"],
            "selected": out["selected"],
            "selections": out["selections"],
            "history": out["history"],
            "steps": out["steps"],
            "train_time_s": out["train_time_s"],
            "wall_time_s": time.monotonic() - t_start,
            "started_unix": started_unix,
            "finished_unix": time.time(),
            "steps_per_s": out["steps_per_s"],
            "peak_memory_mb": out["peak_memory_mb"],
            "resumed_from_epoch": out["resumed_from_epoch"],
            **environment(device),
            **(extra_record(method, run) if extra_record else {}),
        }
        write_json(run.metrics, record)
        run.state.unlink(missing_ok=True)
        log.info("%s: test accuracy %.4f", spec.run_id, out["metrics"].get("test", {}).get("accuracy", float("nan")))
        results.append(record)
    return results
