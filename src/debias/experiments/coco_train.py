"""COCO gender leakage (paper 000), stage train (rule coco_train): one job per (split, augmentation, pairing, lr)
cell and its seeds. Images stay whole on the device; each step indexes a batch, makes the training view on the
device (``image_pipeline``), and calls the method's ``update`` (mixing happens inside the method). After every epoch,
macro-F1 on val (threshold 0.5) picks the checkpoint (G4); the chosen model gives mAP on the original test split and
the logits for the leakage jobs: the original train split through the training view (random crop + flip, unmixed),
val and test through the centre crop. Resumable state at epoch ends (model, optimiser, RNG, best checkpoint,
history)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from debias.config import COCO_GRID_KEYS, row_method
from debias import tasks
from debias.determinism import configure as configure_determinism
from debias.devices import resolve_device
from debias.engine import RunSpec, fit, peak_memory_mb, reset_peak_memory
from debias.experiments.coco_keys import gamma_of
from debias.io import torch_save, write_json
from debias.metrics import macro_f1, mean_average_precision
from debias.provenance import environment
from debias.runner import fingerprint
from debias.tasks.base import check_method
from debias.tasks.coco import make_backbone, read, split_logits

log = logging.getLogger(__name__)


def train(*, hparams: dict, model: dict, train_cfg: dict, image: dict, split: str, aug: str, pairing: str,
          lr: float, seeds: list[int], data: str, labels: str, metrics: list[str], logits: list[str],
          states: list[str], device: str, progress: bool = True, cache: dict | None = None,
          weights_file: str | None = None) -> None:
    """Train ``seeds`` of one cell. ``cache``: a dict shared by the cells of one job, so that the images, the
    labels and their sha256 are read once per job rather than once per cell. ``weights_file``: the pretrained file
    ``model.weights`` names (debias.data.pretrained), None for a model trained from scratch."""
    dev = resolve_device(device)
    configure_determinism(train_cfg.get("deterministic", True))  # as every other experiment's runs (runner.py)
    task = tasks.get("coco")
    x, y, g, lab, labels_sha, data_sha = read(data, labels, dev, {} if cache is None else cache)
    gamma = gamma_of(split)
    train_idx = (torch.arange(lab["splits"]["train"]["gender"].numel()) if gamma is None
                 else lab["subsets"]["train"][gamma]).to(dev)
    task_cfg = {"train": train_cfg, "image": image}
    pipe = task.pipeline(task_cfg)
    cls, hp = row_method("coco", aug, hparams, supplied=COCO_GRID_KEYS)
    cls_name = cls.name
    hp = {**hp, "lr": lr, "pairing": pairing if pairing != "none" else "random",
          "autocast": train_cfg.get("autocast", True)}
    check_method(cls, hp, task)
    for seed, metrics_out, logits_out, state_path in zip(seeds, metrics, logits, states):
        run_id = f"coco/split={split}/{aug}/pairing={pairing}/lr={lr:.0e}/seed={seed}"
        t_start, started_unix = time.monotonic(), time.time()
        reset_peak_memory(dev)  # each run's own peak, not the job's so far (a job may train several cells)
        torch.manual_seed(seed)
        method = cls(make_backbone(model, len(lab["columns"]), weights_file), hp).to(dev)
        if train_cfg["channels_last"]:
            method.modules.to(memory_format=torch.channels_last)
        fp = fingerprint(cls_name, hp, train_cfg, model, image, labels_sha, data_sha, split, seed, dev.type)
        spec = RunSpec(run_id=run_id, seed=seed, epochs=hp.get("epochs"), max_steps=hp.get("steps"),
                       batch_size=train_cfg["batch_size"],
                       state_path=Path(state_path), eval_every=1, eval_splits=("val",), final_splits=(),
                       checkpoint_every_s=train_cfg["checkpoint_every_s"], fingerprint=fp, progress=progress,
                       select=("val_macro_f1",), min_batch=task.min_batch, train_view=task.train_view(task_cfg),
                       evaluate=task.evaluator(task_cfg))
        # the training split: the (γ-)subset's rows of the train images, which stay whole on the device once
        splits = {"train": {"x": x["train"], "x_rows": train_idx, "y": y["train"][train_idx],
                            "group": g["train"][train_idx]},
                  "val": {"x": x["val"], "y": y["val"], "group": g["val"]}}
        run = fit(method, splits, spec)  # the method is left holding the selected epoch's weights
        out = {"history": run["history"], "selected": run["selected"], "train_time_s": run["train_time_s"],
               "resumed_from_epoch": run["resumed_from_epoch"], "images_per_s": run["examples_per_s"]}
        val_logits = split_logits(method, x["val"], pipe, train_cfg["eval_batch_size"])
        test_logits = split_logits(method, x["test"], pipe, train_cfg["eval_batch_size"])
        gen = torch.Generator(device=dev).manual_seed(seed + 12345)
        train_logits = split_logits(method, x["train"], pipe, train_cfg["eval_batch_size"], True, gen)
        res = {}
        for s, z in (("val", val_logits), ("test", test_logits)):
            truth = y[s].cpu().numpy()
            m, used = mean_average_precision(z.numpy(), truth)
            res[s] = {"mAP": m, "classes_in_mAP": used, "macro_f1": macro_f1(z.numpy() > 0, truth),
                      "n": int(truth.shape[0])}
        torch_save({"train": train_logits, "val": val_logits, "test": test_logits,
                    "train_view": "random crop + flip (unmixed)", "eval_view": "centre crop"}, logits_out)
        write_json(metrics_out, {
            "experiment": "coco", "variant": {"split": split, "pairing": pairing, "lr": lr}, "method": aug,
            "method_class": cls_name, "hparams": hp, "train": train_cfg, "model": model, "image": image,
            "seed": seed, "labels_sha256": labels_sha, "data_sha256": data_sha,
            "n_train": int(train_idx.numel()), "metrics": res, **out,
            "wall_time_s": time.monotonic() - t_start, "started_unix": started_unix, "finished_unix": time.time(),
            "peak_memory_mb": peak_memory_mb(dev), **environment(dev),
        })
        Path(state_path).unlink(missing_ok=True)
        log.info("%s: test mAP %.4f (epoch %d of %d by val macro-F1)", run_id, res["test"]["mAP"],
                 out["selected"]["epoch"], len(out["history"]))
