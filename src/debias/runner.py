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

from debias.batched import batchable, fit_batched, stack_methods
from debias.config import SECTIONS, row_method
from debias.engine import RunSpec, fit
from debias.determinism import configure as configure_determinism
from debias.io import sha256_file, torch_save, write_json
from debias.models import Backbone
from debias.provenance import environment
from debias.tasks.base import check_method

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


@dataclass
class Cell:
    """One table cell's runs: the variant (e.g. {"sigma2": "0.020"}), its data (splits, or a function of the seed
    giving them) and the sha256 of the files they come from."""
    variant: dict[str, Any]
    splits: dict[str, dict[str, torch.Tensor]] | Callable[[int], dict[str, dict[str, torch.Tensor]]]
    runs: list[RunOutputs]
    data_sha256: dict[str, str]

    def splits_of(self, run: RunOutputs) -> dict[str, dict[str, torch.Tensor]]:
        return self.splits(run.seed) if callable(self.splits) else self.splits


def train_cell(*, variant: dict[str, Any], splits, runs: list[RunOutputs], data_sha256: dict[str, str],
               **kwargs) -> list[dict[str, Any]]:
    """``train_cells`` for the runs (seeds) of one cell."""
    return train_cells(cells=[Cell(variant, splits, runs, data_sha256)], **kwargs)


def train_cells(
    *,
    experiment: str,
    cells: list[Cell],
    row: str,
    hparams: dict[str, Any],
    train_cfg: dict[str, Any],
    make_backbone: Callable[[], Backbone],
    model_cfg: dict[str, Any],
    device: torch.device,
    group_names: dict[int, str] | None = None,
    progress: bool = True,
    group_weights: dict[int, float] | None = None,
    extra_record: Callable[[Any, RunOutputs], dict[str, Any]] | None = None,
    task=None,
    task_cfg: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Train ``row`` once per run of every cell, in order; with ``train_cfg['batch_runs']`` = k > 1, k runs at a
    time as one batched model (``debias.batched``; the method must be batchable). Each cell's ``data_sha256`` maps
    each data file's role to its sha256 and, with the method, its hyperparameters, ``train_cfg``, ``model_cfg``, the
    seed and the initial model's content, makes up the fingerprint a saved state must match to be resumed: a state
    made on other data or another network is never continued.

    Model selection: the row's ``select`` hyperparameter (a list of rules of ``engine.SELECTION_RULES``, default
    ``[last]``); the first rule's weights are the run's ``model.pt`` and ``metrics``, every rule's epoch and
    metrics go to ``selections`` in metrics.json. ``group_weights`` (e.g. the training split's group counts) add
    the weighted group accuracy to every evaluation. ``extra_record(method, run)`` adds keys to a run's record.
    ``task`` (``debias.tasks``): the dataset; a method that needs a field or label kind it lacks is refused before
    any run starts, and its evaluation, training view and short-batch rule are the runs' (``task_cfg``: what the task
    reads of the config for them, by default ``{"train": train_cfg}``)."""
    # the config key that names the row's entry (the matrix's runs, "matrix/<dataset>", are under matrix.hparams)
    cls, hp = row_method(SECTIONS.get(experiment, experiment.split("/")[0]), row, hparams)
    cls_name = cls.name
    if task is not None:
        check_method(cls, hp, task)
    determinism = configure_determinism(train_cfg.get("deterministic", True))
    k = max(1, int(train_cfg.get("batch_runs", 1)))
    items = [(cell, run) for cell in cells for run in cell.runs]
    if k > 1 and len(items) > 1:
        if not batchable(cls):
            raise ValueError(f"train.batch_runs = {k}: method {row!r} ({cls_name}) cannot train batched; set "
                             f"batch_runs: 1 for this experiment")
        if train_cfg.get("compile", "none") != "none" or train_cfg.get("channels_last"):
            raise ValueError(f"train.batch_runs = {k} with train.compile = {train_cfg.get('compile', 'none')!r} and "
                             f"train.channels_last = {train_cfg.get('channels_last')}: batched runs are neither "
                             f"compiled nor channels-last; set compile: none and channels_last: false, or batch_runs: 1")
    results = []
    for start in range(0, len(items), k):
        chunk = items[start : start + k]
        t_start, started_unix = time.monotonic(), time.time()
        built = []
        for cell, run in chunk:
            method, init_sha256 = _build(cls, hp, make_backbone, run, device, train_cfg, compile=len(chunk) == 1)
            spec = RunSpec(
                run_id=run_id(experiment, cell.variant, row, run.seed),
                seed=run.seed,
                epochs=hp.get("epochs"),
                max_steps=hp.get("steps"),
                batch_size=hp.get("batch_size", train_cfg["batch_size"]),
                state_path=run.state,
                eval_every=train_cfg["eval_every"],
                checkpoint_every_s=train_cfg["checkpoint_every_s"],
                channels_last=train_cfg.get("channels_last", False),
                group_names=group_names or {},
                fingerprint=fingerprint(cls_name, hp, train_cfg, model_cfg, cell.data_sha256, run.seed, init_sha256,
                                        device.type),
                progress=progress,
                group_weights=group_weights or {},
                select=tuple(hp.get("select", ["last"])),
                eval_splits=tuple(train_cfg["eval_splits"]) if train_cfg.get("eval_splits") else None,
                eval_batch_size=train_cfg.get("eval_batch_size", 1000),
                **_task_ways(task, task_cfg or {"train": train_cfg}),
            )
            built.append((cell, run, method, init_sha256, spec))
        if len(chunk) == 1:
            outs = [fit(built[0][2], chunk[0][0].splits_of(chunk[0][1]), built[0][4])]
        else:
            outs = _fit_batch(cls, hp, make_backbone, device, built)
        for (cell, run, method, init_sha256, spec), out in zip(built, outs):
            torch_save(method.model_state(), run.model)
            record = {
                "experiment": experiment,
                "variant": cell.variant,
                "method": row,
                "method_class": cls_name,
                "hparams": hp,
                "train": train_cfg,
                "model": model_cfg,
                "seed": run.seed,
                "init_from": str(run.init_model) if run.init_model else None,
                "init_sha256": init_sha256,
                "data_sha256": cell.data_sha256,
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
                "batched_runs": len(chunk),  # > 1: trained at once with the other runs of its batch (times shared)
                **environment(device),
                **(extra_record(method, run) if extra_record else {}),
            }
            write_json(run.metrics, record)
            run.state.unlink(missing_ok=True)
            headline = task.headline if task is not None else "accuracy"
            log.info("%s: test %s %.4f", spec.run_id, headline,
                     out["metrics"].get("test", {}).get(headline, float("nan")))
            results.append(record)
    return results


def run_id(experiment: str, variant: dict[str, Any], row: str, seed: int) -> str:
    """e.g. colored_mnist/sigma2=0.02/lnl/seed=0; waterbirds/erm/seed=0 (no variant, no empty part)."""
    return "/".join([experiment, *(f"{k}={v}" for k, v in variant.items()), row, f"seed={seed}"])


def _task_ways(task, cfg: dict[str, Any]) -> dict[str, Any]:
    """The RunSpec fields a task sets where it has its own ways (evaluation, training view, short batches)."""
    if task is None:
        return {}
    ways = {"evaluate": task.evaluator(cfg), "train_view": task.train_view(cfg), "min_batch": task.min_batch}
    return {k: v for k, v in ways.items() if v is not None}


def _build(cls, hp, make_backbone, run: RunOutputs, device, train_cfg, compile: bool = True):
    """One run's method as it starts: seeded, built, laid out, compiled (``compile``), its initial model loaded."""
    torch.manual_seed(run.seed)
    method = cls(make_backbone(), hp).to(device)
    if train_cfg.get("channels_last"):
        method.modules.to(memory_format=torch.channels_last)
    if compile:
        method.compile(train_cfg.get("compile", "none"))
    init_sha256 = None
    if run.init_model is not None:
        init_sha256 = sha256_file(run.init_model)
        method.init_from(torch.load(run.init_model, map_location=device, weights_only=True))
    return method, init_sha256


def _fit_batch(cls, hp, make_backbone, device, built) -> list[dict[str, Any]]:
    """The runs of ``built`` trained as one batched method; its resumable state in the first run's state file."""
    members = [b[2] for b in built]
    batched = stack_methods(members, cls(make_backbone(), hp).to(device))
    specs = [b[4] for b in built]
    return fit_batched(batched, members, [cell.splits_of(run) for cell, run, *_ in built], specs,
                       state_path=specs[0].state_path, fingerprint=fingerprint([s.fingerprint for s in specs]))
