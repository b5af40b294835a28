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
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from debias.batching import batches, make_batch
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
    final_splits: tuple[str, ...] | None = None  # splits evaluated with each rule's weights at the end (None: all)
    # the task's ways, where they are not the defaults: a training batch smaller than ``min_batch`` is skipped (e.g.
    # 2: batch norm cannot train on one image); ``train_view`` makes a training batch's x from the stored x (e.g. a
    # random crop and flip of uint8 images; default: uint8 to float in [0, 1]); ``evaluate(method, split)`` gives a
    # split's metrics (default: single-label accuracy, per group where the split has groups)
    min_batch: int = 1
    train_view: Any = None
    evaluate: Any = None


# what each rule maximises over the evaluated epochs, from the validation metrics of an epoch
SELECTION_RULES = {
    "last": None,
    "val_average": "plain validation accuracy (group_DRO's --save_best for ERM), ties to the earlier epoch",
    "val_worst_group": "validation worst-group accuracy, ties to the earlier epoch",
    "val_macro_f1": "best val macro-F1 (threshold 0.5), ties to the later epoch",
}
# rule -> (the validation metric it maximises, whether a tie goes to the later epoch). COCO's macro-F1 is often 0
# for several epochs at mini scale, and Wang et al.'s selection keeps the later of equal epochs.
SELECTION_METRICS = {"val_average": ("accuracy", False), "val_worst_group": ("worst_group_accuracy", False),
                     "val_macro_f1": ("macro_f1", True)}


def selection_score(rule: str, val_metrics: dict[str, float]) -> float:
    """The number ``rule`` maximises, from one epoch's validation metrics."""
    if rule not in SELECTION_METRICS:
        raise ValueError(f"selection rule {rule!r} has no score; expected one of {', '.join(SELECTION_RULES)}")
    return float(val_metrics[SELECTION_METRICS[rule][0]])


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
        later = SELECTION_METRICS[rule][1]
        if rule not in best or score > best[rule]["score"] or (later and score == best[rule]["score"]):
            if snapshot is None:
                snapshot = {k: v.detach().to("cpu", copy=True) for k, v in model_state().items()}
            best[rule] = {"score": score, "epoch": epoch, "state": snapshot}


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order of one epoch: a permutation of range(n) determined by (seed, epoch) alone."""
    return torch.randperm(n, generator=epoch_generator(seed, epoch))


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


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
        if idx.numel() >= spec.min_batch:
            yield make_batch(split, idx, spec.channels_last, spec.train_view)


@torch.no_grad()
def evaluate(method: Method, split: dict[str, torch.Tensor], batch_size: int, group_names: dict[int, str],
             channels_last: bool = False, group_weights: dict[int, float] | None = None):
    method.train(False)
    order = torch.arange(split["y"].shape[0], device=split["y"].device)
    preds = [predicted_labels(method.predict(b["x"])) for b in batches(split, order, batch_size, channels_last)]
    method.train(True)
    return classification_metrics(torch.cat(preds), split["y"], split.get("group"), group_names, group_weights)


def evaluate_split(method: Method, split: dict[str, torch.Tensor], spec: RunSpec) -> dict[str, Any]:
    """A split's metrics as the run's task computes them (``spec.evaluate``), by default ``evaluate``'s."""
    if spec.evaluate is not None:
        return spec.evaluate(method, split)
    return evaluate(method, split, spec.eval_batch_size, spec.group_names, spec.channels_last, spec.group_weights)


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


class SingleRun:
    """One run as the loop sees it (``Trainee``): a method, its splits and its spec. ``BatchedRuns``
    (``debias.batched``) is the same interface for N runs trained as one batched model."""

    def __init__(self, method: Method, splits: dict[str, dict[str, torch.Tensor]], spec: RunSpec):
        self.method, self.splits, self.spec = method, splits, spec
        self.n = splits["train"]["y"].shape[0]

    def attach(self) -> None:
        self.method.attach(self.splits)

    def batches(self, epoch: int, steps: int):
        return epoch_batches(self.method, self.splits["train"], self.spec, epoch, steps)

    def update(self, batch):
        return self.method.update(batch)

    def member(self, i: int) -> Method:
        return self.method

    @property
    def hooks(self) -> Method:
        """The method whose epoch hooks and modes the loop calls."""
        return self.method


def fit(method: Method, splits: dict[str, dict[str, torch.Tensor]], spec: RunSpec) -> dict[str, Any]:
    """Train ``method`` on ``splits['train']``; return final metrics, history and timings."""
    missing = [k for k in method.needs if k not in splits["train"]]
    if missing:
        raise KeyError(f"method {method.name!r} needs batch fields {missing}; this dataset supplies "
                       f"{sorted(k for k in splits['train'] if k != 'x_rows')}")
    return train_runs(SingleRun(method, splits, spec), [splits], [spec], spec.state_path, spec.fingerprint)[0]


STATE_FORMAT = 2  # of the resumable state train_runs saves; a state of another format is not resumed


def train_runs(trainee, member_splits: list[dict[str, dict[str, torch.Tensor]]], specs: list[RunSpec],
               state_path: Path, fingerprint: str) -> list[dict[str, Any]]:
    """THE epoch loop: train the ``trainee``'s runs (one method, or N runs as one batched model) for their length,
    evaluating and selecting per run, saving the resumable state of all of them in ``state_path``; one
    ``run_record`` per run, the trainee's ``member(i)`` left holding run i's selected weights."""
    first = specs[0]
    n, N = trainee.n, len(specs)
    steps_per_epoch, total_steps, epochs = run_length(first, n)
    device = member_splits[0]["train"]["y"].device
    for spec, splits in zip(specs, member_splits):
        check_selection(spec, splits, trainee.member(0), epochs)
    selecting = any(r != "last" for r in first.select)
    eval_names = [k for k in member_splits[0] if first.eval_splits is None or k in first.eval_splits]
    trainee.attach()

    label = first.run_id if N == 1 else f"{first.run_id} (+{N - 1} batched)"
    start_epoch, histories, elapsed, best = 0, [[] for _ in specs], 0.0, [{} for _ in specs]
    state = load_state(state_path, fingerprint, label)
    if state is not None and state.get("format") != STATE_FORMAT:
        log.warning("%s: saved state %s has another format; starting afresh", label, state_path)
        state = None
    if state is not None:
        trainee.hooks.load_state_dict(state["method"])
        _set_rng_state(state["rng"])
        start_epoch, histories, elapsed, best = state["epoch"], state["histories"], state["elapsed_s"], state["best"]
        log.info("%s: resumed from %s at epoch %d", label, state_path, start_epoch)
    reset_peak_memory(device)

    from tqdm import tqdm

    # a bar only on a terminal; a job's log gets one line per epoch (``log_epoch``)
    bar = tqdm(total=total_steps, initial=start_epoch * steps_per_epoch, desc=label, mininterval=2.0, unit="step",
               disable=not (first.progress and sys.stderr.isatty()), dynamic_ncols=True)
    trainee.hooks.train(True)
    last_save = t0 = time.monotonic()
    examples = 0
    for epoch in range(start_epoch, epochs):
        t_epoch = time.monotonic()
        epoch_logs = dict(trainee.hooks.on_epoch_start(epoch, epochs, steps_per_epoch))
        step_logs = []
        steps = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
        for batch in trainee.batches(epoch, steps):
            step_logs.append(trainee.update(batch))
            examples += batch["y"].shape[0]
            bar.update(1)
        means = epoch_means(specs, epoch, steps_per_epoch, step_logs)
        epoch_logs.update(trainee.hooks.on_epoch_end(epoch))
        last = epoch + 1 == epochs
        # a selecting run evaluates its last epoch here too (a candidate like any other)
        due = first.eval_every and (epoch + 1) % first.eval_every == 0 and (selecting or not last)
        for i, spec in enumerate(specs):
            entry = {"epoch": epoch + 1, **epoch_logs, **means[i]}
            if due:
                member = trainee.member(i)
                for name in eval_names:
                    entry[name] = evaluate_split(member, member_splits[i][name], spec)
                if selecting and member.selectable(epoch + 1):
                    update_best(best[i], spec.select, epoch + 1, entry["val"], member.modules.state_dict)
            histories[i].append(entry)
        log_epoch(label, epoch, epochs, histories, time.monotonic() - t_epoch,
                  (time.monotonic() - t0) / (epoch + 1 - start_epoch))
        bar.set_postfix({k: f"{v:.4g}" for k, v in {**epoch_logs, **means[0]}.items()}, refresh=False)
        if last or time.monotonic() - last_save >= first.checkpoint_every_s:
            torch_save({"format": STATE_FORMAT, "run_ids": [s.run_id for s in specs], "fingerprint": fingerprint,
                        "epoch": epoch + 1, "method": trainee.hooks.state_dict(), "rng": _rng_state(),
                        "histories": histories, "best": best, "elapsed_s": elapsed + time.monotonic() - t0},
                       state_path)
            last_save = time.monotonic()
    bar.close()
    run_time = time.monotonic() - t0
    train_time = elapsed + run_time
    steps_done = total_steps - min(start_epoch * steps_per_epoch, total_steps)
    out = []
    for i, spec in enumerate(specs):
        member = trainee.member(i)
        selections = select_and_evaluate(member, member_splits[i], spec, best[i], epochs, total_steps)
        if histories[i] and not selecting:
            histories[i][-1].update(selections[spec.select[0]]["metrics"])
        record = run_record(selections, spec.select[0], histories[i], total_steps, train_time,
                            steps_done / max(run_time, 1e-9), device, start_epoch)
        record["examples_per_s"] = examples / N / max(run_time, 1e-9)
        out.append(record)
    return out


def log_epoch(label: str, epoch: int, epochs: int, histories: list[list[dict[str, Any]]], epoch_s: float,
              mean_epoch_s: float) -> None:
    """One flushed line per epoch in the job's log: where the run is, its logged values (the mean over the runs of a
    batch), its validation metrics where evaluated, the epoch's time and the estimated time left."""
    entries = [h[-1] for h in histories]
    values = {k: sum(e[k] for e in entries) / len(entries) for k, v in entries[0].items()
              if k != "epoch" and isinstance(v, (int, float))}
    val = entries[0].get("val", {})
    shown = {k: val[k] for k in ("accuracy", "worst_group_accuracy", "mAP", "macro_f1") if k in val}
    left = mean_epoch_s * (epochs - epoch - 1)
    log.info("%s: epoch %d/%d %s%s (%.1f s; about %s left)", label, epoch + 1, epochs,
             " ".join(f"{k} {v:.4g}" for k, v in values.items()),
             "".join(f" val {k} {v:.4g}" for k, v in shown.items()), epoch_s, _duration(left))
    for handler in logging.getLogger().handlers:
        handler.flush()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def epoch_means(specs: list[RunSpec], epoch: int, steps_per_epoch: int,
                step_logs: list[dict[str, torch.Tensor]]) -> list[dict[str, float]]:
    """Each run's epoch mean of every logged value (a value of shape [N] per step, or one shared by every run),
    computed for all runs at once; a NaN or Inf stops training naming the run, the epoch and the step."""
    N = len(specs)
    if not step_logs:
        return [{} for _ in specs]
    logs = {k: torch.stack([s[k].float().reshape(-1) for s in step_logs]) for k in step_logs[0]}  # [steps, N or 1]
    finite = torch.stack([torch.isfinite(v).all(dim=0).expand(N) for v in logs.values()]).all(dim=0).tolist()
    for i, ok in enumerate(finite):
        if not ok:
            _raise_non_finite(specs[i], epoch, steps_per_epoch,
                              {k: v[:, min(i, v.shape[1] - 1)] for k, v in logs.items()})
    means = {k: v.mean(dim=0).tolist() for k, v in logs.items()}
    return [{k: m[min(i, len(m) - 1)] for k, m in means.items()} for i in range(N)]


def _raise_non_finite(spec: RunSpec, epoch: int, steps_per_epoch: int, logs: dict[str, torch.Tensor]) -> None:
    for key, values in logs.items():
        bad = (~torch.isfinite(values)).nonzero()
        if bad.numel():
            i = int(bad[0])
            raise NonFiniteLoss(
                f"run {spec.run_id}: {key} = {values[i].item()} at epoch {epoch}, step {epoch * steps_per_epoch + i}"
                f" (step {i} of the epoch); stopping"
            )


def select_and_evaluate(method: Method, splits, spec: RunSpec, best: dict[str, dict[str, Any]], epochs: int,
                        total_steps: int) -> dict[str, dict[str, Any]]:
    """Every rule's weights evaluated on every split: {rule: {rule, epoch, step, score, description, metrics}}. The
    method is left holding the first rule's weights."""
    def run_eval():
        return {name: evaluate_split(method, split, spec) for name, split in splits.items()
                if spec.final_splits is None or name in spec.final_splits}

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
