"""Names the COCO stages, the rules and the table code share, importable without torch (the workflow's driver needs
no torch)."""

from __future__ import annotations

SPLIT_NAMES = {"none": "no balance", "gamma1": "γ = 1", "gamma2": "γ = 2", "gamma3": "γ = 3"}
AUG_NAMES = {"nomix": "normal", "mixup": "mixup", "cutmix": "cutmix"}


GAMMAS = {"none": None, "gamma1": 1, "gamma2": 2, "gamma3": 3}  # training split -> its γ (None: the whole split)


def gamma_of(split: str) -> int | None:
    """The γ of a training split (gamma1 -> 1), None for the whole train split ("none"), looked up."""
    if split not in GAMMAS:
        raise ValueError(f"COCO training split {split!r}; expected one of {', '.join(GAMMAS)}")
    return GAMMAS[split]


def f1_curve_key(mode: str, split: str | None) -> str:
    """The file stem of an F1-matched leakage curve: the balanced attacker draws from the full splits, so one
    curve serves every split; the unbalanced attacker trains on the split's (γ-)train set, one curve per split."""
    return "balanced" if mode == "balanced" else f"unbalanced_split={split}"
