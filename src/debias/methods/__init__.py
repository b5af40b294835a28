"""Methods, registered by name. Importing this package registers every built-in method."""

from debias.methods import adversarial, erm, fisher, groupdro, mixing, reweighting  # noqa: F401  (registration side effects)
from debias.methods.base import RUN_KEYS, Method
from debias.methods.registry import get, names, register

__all__ = ["RUN_KEYS", "Method", "get", "names", "register"]
