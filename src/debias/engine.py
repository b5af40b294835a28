"""The training loop shared by every experiment.

Small datasets live whole on the device; each step indexes a batch out of them (no DataLoader, no per-sample
Python). The sample order of every epoch is a pure function of (seed, epoch), and the resumable state
(method modules, optimisers, schedulers, RNG states, epoch, history) is saved atomically at epoch ends, so a
killed run resumed from its state ends with the same numbers as one that ran through.

Model selection (``RunSpec.select``): one or several rules, each picking one epoch of the run: ``last`` (the
final epoch), ``val_average`` (the highest plain validation accuracy, what group_DRO's ``--save_best`` keeps for
a non-robust run: its ``avg_acc`` weights the group accuracies by the validation split's own counts) or
``val_worst_group`` (the highest validation worst-group accuracy). Ties go to the earlier epoch (group_DRO's
``--save_best`` keeps the first maximum). The best weights of every rule are part of the resumable state, so a
resumed run selects the same epochs. At the end each rule's
weights are evaluated on every split; the first rule's are the run's result (and stay in the method).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from debias.io import torch_save
from debias.losses import predicted_labels
from debias.methods.base import Method
from debias.metrics import classification_metrics

log = logging.getLogger(__name__)


class NonFiniteLoss(FloatingPointError):
    """A logged loss became NaN or Inf; the message names the run, the epoch and the step."""


@dataclass
class RunSpec:
    run_id: str
    seed: int
    epochs: int | None  # None: as many as ``max_steps`` needs
    batch_size: int
    state_path: Path
    eval_every: int = 0  # epochs between evaluations of every split; 0 = only at the end
    checkpoint_every_s: float = 60.0  # minimum seconds between two saves of the resumable state
    eval_batch_size: int = 1000
    group_names: dict[int, str] = field(default_factory=dict)
    group_weights: dict[int, float] = field(default_factory=dict)  # e.g. train group counts: weighted_group_accuracy
    max_steps: int | None = None  # stop after this many steps (in the last epoch) instead of after full epochs
    fingerprint: str = ""  # what the state must match to be resumed (hyperparameters, data hash)
    progress: bool = True
    channels_last: bool = False  # feed image batches in channels-last layout (faster convolutions on CPU)
    select: tuple[str, ...] = ("last",)  # selection rules (SELECTION_RULES); the first one is the run's result
    eval_splits: tuple[str, ...] | None = None  # splits evaluated every eval_every epochs (None: all)


# what each rule maximises over the evaluated epochs, from the validation metrics of an epoch
SELECTION_RULES = {
    "last": None,
    "val_average": "plain validation accuracy (group_DRO's --save_best for ERM), ties to the earlier epoch",
    "val_worst_group": "validation worst-group accuracy, ties to the earlier epoch",
}


def selection_score(rule: str, val_metrics: dict[str, float]) -> float:
    """The number ``rule`` maximises, from one epoch's validation metrics."""
    if rule == "val_average":
        return float(val_metrics["accuracy"])
    if rule == "val_worst_group":
        return float(val_metrics["worst_group_accuracy"])
    raise ValueError(f"selection rule {rule!r} has no score; expected one of {', '.join(SELECTION_RULES)}")


def check_selection(spec: "RunSpec", splits: dict, method: Method, epochs: int) -> None:
    unknown = [r for r in spec.select if r not in SELECTION_RULES]
    if unknown or not spec.select:
        raise ValueError(f"run {spec.run_id}: selection rules {list(spec.select)}; expected one or more of "
                         f"{', '.join(SELECTION_RULES)}")
    if any(r != "last" for r in spec.select):
        if "val" not in splits:
            raise ValueError(f"run {spec.run_id}: selection by {list(spec.select)} needs a 'val' split; "
                             f"the splits are {sorted(splits)}")
        if spec.eval_every != 1 or (spec.eval_splits is not None and "val" not in spec.eval_splits):
            raise ValueError(f"run {spec.run_id}: selection by {list(spec.select)} needs the val split evaluated "
                             f"every epoch (eval_every 1, eval_splits with val); got eval_every {spec.eval_every}, "
                             f"eval_splits {spec.eval_splits}")
        require_selectable_epoch(method, epochs, spec.run_id, f"selection by {list(spec.select)}")


def require_selectable_epoch(method: Method, epochs: int, run_id: str, rule: str) -> None:
    """Refuse, before training, a run whose method allows none of its epochs to be selected (``Method.selectable``)."""
    if not any(method.selectable(e) for e in range(1, epochs + 1)):
        raise ValueError(f"run {run_id}: {rule} has no candidate epoch: method {method.name!r} allows none of "
                         f"epochs 1..{epochs} (a warm-up as long as the run?)")


def update_best(best: dict[str, dict[str, Any]], select: tuple[str, ...], epoch: int, val_metrics: dict[str, float],
                model_state) -> None:
    """Keep, per non-``last`` rule, the epoch with the highest score (the first one on ties) and a copy of its
    weights (``model_state``: a callable giving the modules' state dict, called only when some rule improves)."""
    snapshot = None
    for rule in select:
        if rule == "last":
            continue
        score = selection_score(rule, val_metrics)
        if rule not in best or score > best[rule]["score"]:
            if snapshot is None:
                snapshot = {k: v.detach().to("cpu", copy=True) for k, v in model_state().items()}
            best[rule] = {"score": score, "epoch": epoch, "state": snapshot}


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order of one epoch: a permutation of range(n) determined by (seed, epoch) alone."""
    return torch.randperm(n, generator=epoch_generator(seed, epoch))


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def make_batch(split: dict[str, torch.Tensor], idx: torch.Tensor, channels_last: bool = False):
    """Index every field; ``x`` stored as uint8 is converted to float in [0, 1]."""
    batch = {k: v[idx] for k, v in split.items()}
    if batch["x"].dtype == torch.uint8:
        batch["x"] = batch["x"].float().div_(255.0)
    if channels_last and batch["x"].dim() == 4:
        batch["x"] = batch["x"].contiguous(memory_format=torch.channels_last)
    return batch


def batches(split: dict[str, torch.Tensor], order: torch.Tensor, batch_size: int, channels_last: bool = False):
    """Consecutive batches of ``order`` (the last one may be smaller)."""
    for start in range(0, order.numel(), batch_size):
        yield make_batch(split, order[start : start + batch_size], channels_last)


def epoch_indices(method: Method, n: int, batch_size: int, seed: int, epoch: int, steps: int, device):
    """The batch indices of one epoch: the method's own sampler if it has one, else a shuffled pass over range(n)
    (the last batch may be smaller)."""
    if method.batch_sampler is not None:
        # drawn on the host for the whole epoch and copied to the device at once: a copy per step would make the
        # host wait for the GPU at every step
        drawn = list(method.batch_sampler(n, batch_size, steps, epoch_generator(seed, epoch)))
        if drawn:
            yield from torch.cat(drawn).to(device).split([len(i) for i in drawn])
        return
    order = epoch_order(n, seed, epoch)[: steps * batch_size].to(device)
    for start in range(0, order.numel(), batch_size):
        yield order[start : start + batch_size]


def epoch_batches(method: Method, split, spec: "RunSpec", epoch: int, steps: int):
    """The batches of one epoch (``epoch_indices``), every field indexed."""
    n, device = split["y"].shape[0], split["y"].device
    for idx in epoch_indices(method, n, spec.batch_size, spec.seed, epoch, steps, device):
        yield make_batch(split, idx, spec.channels_last)


@torch.no_grad()
def evaluate(method: Method, split: dict[str, torch.Tensor], batch_size: int, group_names: dict[int, str],
             channels_last: bool = False, group_weights: dict[int, float] | None = None):
    method.train(False)
    order = torch.arange(split["y"].shape[0], device=split["y"].device)
    preds = [predicted_labels(method.predict(b["x"])) for b in batches(split, order, batch_size, channels_last)]
    method.train(True)
    return classification_metrics(torch.cat(preds), split["y"], split.get("group"), group_names, group_weights)


def _rng_state() -> dict[str, Any]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_initialized():  # a CPU run on a GPU node leaves CUDA (and its memory) alone
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def run_length(spec: RunSpec, n: int) -> tuple[int, int, int]:
    """(steps per epoch, total steps, epochs) of a run over ``n`` training examples: its length given as epochs or
    as steps (``max_steps``; the last epoch then stops part way)."""
    steps_per_epoch = -(-n // spec.batch_size)
    if (spec.epochs is None) == (spec.max_steps is None):
        raise ValueError(f"run {spec.run_id}: give the run's length as epochs or as max_steps, not both")
    total_steps = spec.max_steps or spec.epochs * steps_per_epoch
    return steps_per_epoch, total_steps, -(-total_steps // steps_per_epoch)


def load_state(path, fingerprint: str, label: str) -> dict[str, Any] | None:
    """The resumable state saved at ``path`` if there is one made with the same settings (``fingerprint``), else
    None (a state of other settings is named in the log and not resumed)."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("fingerprint") != fingerprint:
        log.warning("%s: saved state %s was made with other settings; starting afresh", label, path)
        return None
    return state


def run_record(selections: dict[str, dict[str, Any]], first_rule: str, history: list[dict[str, Any]],
               total_steps: int, train_time_s: float, steps_per_s: float, device: torch.device,
               start_epoch: int) -> dict[str, Any]:
    """What a trained run returns (``fit``; each run of ``batched.fit_batched``): the first selection rule's metrics
    and selection, every rule's, the history and the timings."""
    first = selections[first_rule]
    return {
        "metrics": first["metrics"],
        "history": history,
        "selected": {k: v for k, v in first.items() if k != "metrics"},
        "selections": selections,
        "steps": total_steps,
        "train_time_s": train_time_s,
        "steps_per_s": steps_per_s,
        "peak_memory_mb": peak_memory_mb(device),
        "resumed_from_epoch": start_epoch,
    }


def _check_finite(spec: RunSpec, epoch: int, steps_per_epoch: int, logs: list[dict[str, torch.Tensor]]) -> None:
    for key in logs[0]:
        values = torch.stack([step[key].float().reshape(()) for step in logs])
        bad = (~torch.isfinite(values)).nonzero()
        if bad.numel():
            i = int(bad[0])
            raise NonFiniteLoss(
                f"run {spec.run_id}: {key} = {values[i].item()} at epoch {epoch}, step {epoch * steps_per_epoch + i}"
                f" (step {i} of the epoch); stopping"
            )


def fit(method: Method, splits: dict[str, dict[str, torch.Tensor]], spec: RunSpec) -> dict[str, Any]:
    """Train ``method`` on ``splits['train']``; return final metrics, history and timings."""
    train = splits["train"]
    missing = [k for k in method.needs if k not in train]
    if missing:
        raise KeyError(f"method {method.name!r} needs batch fields {missing}; this dataset supplies {sorted(train)}")
    n = train["y"].shape[0]
    steps_per_epoch, total_steps, epochs = run_length(spec, n)
    device = train["y"].device
    check_selection(spec, splits, method, epochs)
    selecting = any(r != "last" for r in spec.select)
    eval_names = [k for k in splits if spec.eval_splits is None or k in spec.eval_splits]
    method.attach(splits)

    start_epoch, history, elapsed, best = 0, [], 0.0, {}
    state = load_state(spec.state_path, spec.fingerprint, spec.run_id)
    if state is not None:
        method.load_state_dict(state["method"])
        _set_rng_state(state["rng"])
        start_epoch, history, elapsed = state["epoch"], state["history"], state["elapsed_s"]
        best = state.get("best", {})
        log.info("%s: resumed from %s at epoch %d", spec.run_id, spec.state_path, start_epoch)
    reset_peak_memory(device)

    from tqdm import tqdm

    bar = tqdm(
        total=total_steps, initial=start_epoch * steps_per_epoch, desc=spec.run_id,
        disable=not spec.progress, mininterval=2.0, unit="step", dynamic_ncols=True,
    )
    method.train(True)
    last_save = time.monotonic()
    t0 = time.monotonic()
    for epoch in range(start_epoch, epochs):
        epoch_logs = dict(method.on_epoch_start(epoch, epochs, steps_per_epoch))
        step_logs = []
        steps = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
        for batch in epoch_batches(method, train, spec, epoch, steps):
            step_logs.append(method.update(batch))
            bar.update(1)
        _check_finite(spec, epoch, steps_per_epoch, step_logs)
        epoch_logs.update(method.on_epoch_end(epoch))
        for key in step_logs[0]:
            epoch_logs[key] = torch.stack([s[key].float().reshape(()) for s in step_logs]).mean().item()
        entry = {"epoch": epoch + 1, **epoch_logs}
        last = epoch + 1 == epochs
        # a selecting run evaluates its last epoch here too (a candidate like any other)
        if spec.eval_every and ((epoch + 1) % spec.eval_every == 0) and (selecting or not last):
            for name in eval_names:
                entry[name] = evaluate(method, splits[name], spec.eval_batch_size, spec.group_names,
                                       spec.channels_last, spec.group_weights)
            if selecting and method.selectable(epoch + 1):
                update_best(best, spec.select, epoch + 1, entry["val"], method.modules.state_dict)
        history.append(entry)
        bar.set_postfix({k: f"{v:.4g}" for k, v in epoch_logs.items()}, refresh=False)
        if last or time.monotonic() - last_save >= spec.checkpoint_every_s:
            torch_save(
                {
                    "run_id": spec.run_id, "fingerprint": spec.fingerprint, "epoch": epoch + 1,
                    "method": method.state_dict(), "rng": _rng_state(), "history": history,
                    "elapsed_s": elapsed + time.monotonic() - t0, "best": best,
                },
                spec.state_path,
            )
            last_save = time.monotonic()
    bar.close()
    train_time = elapsed + time.monotonic() - t0
    steps_done = total_steps - min(start_epoch * steps_per_epoch, total_steps)
    selections = select_and_evaluate(method, splits, spec, best, epochs, total_steps)
    if history and not selecting:
        history[-1].update(selections[spec.select[0]]["metrics"])
    return run_record(selections, spec.select[0], history, total_steps, train_time,
                      steps_done / max(time.monotonic() - t0, 1e-9), device, start_epoch)


def select_and_evaluate(method: Method, splits, spec: RunSpec, best: dict[str, dict[str, Any]], epochs: int,
                        total_steps: int) -> dict[str, dict[str, Any]]:
    """Every rule's weights evaluated on every split: {rule: {rule, epoch, step, score, description, metrics}}. The
    method is left holding the first rule's weights."""
    def run_eval():
        return {name: evaluate(method, split, spec.eval_batch_size, spec.group_names, spec.channels_last,
                               spec.group_weights) for name, split in splits.items()}

    steps_per_epoch = -(-splits["train"]["y"].shape[0] // spec.batch_size)
    out = {}
    last_state = None
    if any(r != "last" for r in spec.select):
        last_state = {k: v.detach().clone() for k, v in method.modules.state_dict().items()}
    for rule in spec.select:
        if rule == "last":
            if last_state is not None:
                method.modules.load_state_dict(last_state)
            out[rule] = {"rule": "last", "epoch": epochs, "step": total_steps, "description": "the last epoch"}
        else:
            b = best[rule]
            method.modules.load_state_dict(b["state"])  # copied into the method's own tensors (device kept)
            out[rule] = {"rule": rule, "epoch": b["epoch"], "step": min(b["epoch"] * steps_per_epoch, total_steps),
                         "score": b["score"], "description": SELECTION_RULES[rule]}
        out[rule]["metrics"] = run_eval()
    first = spec.select[0]
    if len(spec.select) > 1:  # leave the method with the first rule's weights
        state = last_state if first == "last" else best[first]["state"]
        method.modules.load_state_dict(state)
    return out


def reset_peak_memory(device: torch.device) -> None:
    """Start the device's peak-memory counter afresh (a no-op off CUDA, where the peak is the process's RSS)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
