"""Names the COCO rules and the table code share, importable without torch (the workflow's driver needs no torch)."""


def f1_curve_key(mode: str, split: str | None) -> str:
    """The file stem of an F1-matched leakage curve: the balanced attacker draws from the full splits, so one
    curve serves every split; the unbalanced attacker trains on the split's (γ-)train set, one curve per split."""
    return "balanced" if mode == "balanced" else f"unbalanced_split={split}"
