"""The task (dataset) contract: what the engine, the runner and the rules know of a dataset.

A task says which splits it has and the batch fields each carries (``x``, ``y``, ``group``, ``bias``, ``index``), the
kind of its labels (``single``: one class index per sample; ``multi``: a multi-hot row), the backbone it trains by
default, how a split is evaluated, which model-selection rules it allows, and a synthetic sample of its inputs for
the throughput benchmark. Methods never see a task: they read the batch fields they declare (``Method.needs``), and
``check_method`` refuses, before any training, a method whose fields or label kind the task cannot give.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

import torch

from debias.config import ConfigError
from debias.engine import SELECTION_RULES
from debias.models import Backbone

Splits = dict[str, dict[str, torch.Tensor]]
LABEL_KINDS = ("single", "multi")
# what each batch field means, for the messages and the README's table
FIELDS = {
    "x": "the input (uint8 image, or float)",
    "y": "the label: a class index (single-label) or a multi-hot row (multi-label)",
    "group": "the group a sample belongs to (e.g. label x attribute), for per-group and worst-group accuracy",
    "bias": "the bias attribute a method learns not to use (colour bins, place, gender), [N, channels]",
    "index": "the sample's row in its split (per-sample state, e.g. fisher_flat's multipliers)",
}


class TaskMismatch(ConfigError):
    """A method asks for a batch field or a label kind the dataset does not give; names both and what is missing."""


class Task(ABC):
    name = "?"
    title = "?"
    label_kind = "single"
    # split -> the batch fields it carries (the training split's are what a method may read)
    fields: dict[str, tuple[str, ...]] = {}
    group_names: dict[int, str] = {}
    selection_rules: tuple[str, ...] = ("last",)
    default_backbone = "?"
    # the metrics ``evaluate`` gives per split, and the one a comparison across methods reads first
    metrics: tuple[str, ...] = ("accuracy",)
    headline = "accuracy"
    # the test metrics a comparison across datasets reads: the worst group's, then the average
    worst_and_average: tuple[str, str] = ("worst_group_accuracy", "accuracy")
    splits_per_seed = False  # True where a run's splits are drawn per seed (``load`` reads ``seed``)

    # -- data -----------------------------------------------------------------------------------------
    @abstractmethod
    def load(self, inputs: dict[str, Any], device: torch.device, seed: int) -> Splits:
        """The splits of one run (``seed``: tasks whose split depends on the seed, e.g. FairFace's draws), whole on
        ``device``, from the prepared files ``inputs`` (role -> path)."""

    @abstractmethod
    def backbone(self, model_cfg: dict[str, Any], splits: Splits, weights_file: str | None = None) -> Backbone:
        """A freshly initialised network for the task (``model_cfg``: the config's model entry)."""

    # ``cfg`` below: the dataset's config entry as a run sees it: ``train`` (batch sizes, layout) and, for the photo
    # datasets, ``image`` (crop sizes)
    def evaluator(self, cfg: dict[str, Any]) -> Callable[[Any, dict[str, torch.Tensor]], dict] | None:
        """``RunSpec.evaluate``: a split's metrics; None for the engine's own (accuracy, per group where the split
        has groups)."""
        return None

    def train_view(self, cfg: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """``RunSpec.train_view``: a training batch's x from the stored x (None: uint8 to float in [0, 1])."""
        return None

    min_batch = 1  # a training batch smaller than this is skipped (2 for batch norm on one image)

    @abstractmethod
    def synthetic(self, n: int, model_cfg: dict[str, Any], image: dict[str, Any] | None = None
                  ) -> dict[str, torch.Tensor]:
        """A split of ``n`` random samples shaped as the task's training split stores them (the benchmarks': on
        it ``train_view`` makes a training batch as in training). ``image``: the dataset's image settings where
        its stored size is configured (COCO's and Waterbirds' config entry ``image``, FairFace's
        ``{"size": image_size}``); None: the task's own default for ``model_cfg``."""

    def network(self, model_cfg: dict[str, Any]) -> str:
        """The network ``backbone`` builds from ``model_cfg``, in a few words (the throughput table's ``model``)."""
        return self.default_backbone

    # -- checks ---------------------------------------------------------------------------------------
    def check_selection(self, rules) -> None:
        bad = [r for r in rules if r not in self.selection_rules or r not in SELECTION_RULES]
        if bad:
            raise TaskMismatch(f"dataset {self.name!r}: selection rule(s) {bad} not allowed; it allows "
                               f"{', '.join(self.selection_rules)}")


def method_needs(cls: type, hp: dict[str, Any]) -> tuple[str, ...]:
    """The batch fields a method with hyperparameters ``hp`` reads (``needs``, plus ``required_fields(hp)`` where
    the hyperparameters add one, e.g. mixup's pairing by group)."""
    extra = cls.required_fields(hp) if hasattr(cls, "required_fields") else ()
    return tuple(dict.fromkeys((*cls.needs, *extra)))


def mismatch(cls: type, hp: dict[str, Any], task: Task, fields: dict[str, tuple[str, ...]] | None = None) -> str | None:
    """Why method ``cls`` with ``hp`` cannot run on ``task`` (None: it can); ``fields``: the task's splits and fields
    where an adapter changed them (e.g. a validation split held out of test)."""
    fields = task.fields if fields is None else fields
    kinds = getattr(cls, "label_kinds", ("single",))
    if task.label_kind not in kinds:
        return (f"{task.label_kind}-label data; method {cls.name!r} takes {' or '.join(kinds)}-label data only")
    missing = [f for f in method_needs(cls, hp) if f not in fields.get("train", ())]
    if missing:
        return (f"no batch field {', '.join(repr(m) for m in missing)} ({'; '.join(FIELDS.get(m, m) for m in missing)}"
                f"); its training split has {', '.join(fields.get('train', ()))}")
    if "val" in getattr(cls, "needs_splits", ()) and "val" not in fields and "meta" not in fields:
        return "no validation split for the method's clean meta set"
    return None


def check_method(cls: type, hp: dict[str, Any], task: Task, fields: dict[str, tuple[str, ...]] | None = None) -> None:
    """Refuse, before training, method ``cls`` on ``task`` where it needs what the task lacks."""
    why = mismatch(cls, hp, task, fields)
    if why is not None:
        raise TaskMismatch(f"method {cls.name!r} cannot run on dataset {task.name!r}: {why}")


def check_splits(task: Task, splits: Splits) -> None:
    """The loaded splits carry what the task declares (a prepared file of another format is refused here, naming the
    split and the field)."""
    for split, fields in task.fields.items():
        if split not in splits:
            raise TaskMismatch(f"dataset {task.name!r}: split {split!r} missing; loaded {sorted(splits)}")
        lacking = [f for f in fields if f not in splits[split]]
        if lacking:
            raise TaskMismatch(f"dataset {task.name!r}: split {split!r} lacks field(s) {lacking}; it has "
                               f"{sorted(splits[split])}")
