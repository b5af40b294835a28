"""Tasks (datasets), registered by name: the engine's only view of data. Importing this package registers every task
module in it (a new dataset is a new module here, nothing else to edit); ``get(name)`` finds one, ``check_method``
refuses a method a task cannot feed."""

import importlib
import pkgutil

from debias.tasks.base import FIELDS, LABEL_KINDS, Task, TaskMismatch, check_method, check_splits, method_needs, mismatch
from debias.tasks.registry import get, names, register_task

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "registry"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["FIELDS", "LABEL_KINDS", "Task", "TaskMismatch", "check_method", "check_splits", "get", "method_needs",
           "mismatch", "names", "register_task"]
