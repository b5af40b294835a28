"""Tasks are classes registered by name, as methods are; ``get`` finds one, ``names`` lists them."""

from __future__ import annotations

_TASKS: dict[str, object] = {}


def register_task(name: str):
    def deco(cls):
        if name in _TASKS:
            raise ValueError(f"task {name!r} registered twice")
        cls.name = name
        _TASKS[name] = cls()
        return cls

    return deco


def get(name: str):
    try:
        return _TASKS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(_TASKS))}") from None


def names() -> list[str]:
    return sorted(_TASKS)
