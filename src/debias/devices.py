"""Device choice and GPU pinning for jobs that Snakemake runs side by side.

Snakemake counts GPUs (``--resources gpu=N``) but never says which one a job should use, so two concurrent
jobs would both land on ``cuda:0``. ``pin_gpus`` runs before torch initialises CUDA: it takes an exclusive
``flock`` on one lock file per device slot and exports the slots it holds as ``CUDA_VISIBLE_DEVICES``. The
kernel drops the locks when the process ends, however it ends. Under Slurm the allocation's devices are used
as given. This module must not import torch.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

_HELD: list = []  # open lock files, kept for the life of the process


def visible_pool() -> list[str]:
    """The device ids this process may choose from: CUDA_VISIBLE_DEVICES if set, else every physical GPU.

    ``DEBIAS_GPU_COUNT`` overrides the physical count (for tests and for machines without nvidia-smi).
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES", "").strip():
        return [d.strip() for d in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
    if "DEBIAS_GPU_COUNT" in os.environ:
        return [str(i) for i in range(int(os.environ["DEBIAS_GPU_COUNT"]))]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(l for l in out.splitlines() if l.startswith("GPU "))]


def pin_gpus(n: int, lock_dir: str | Path = ".snakemake/gpu-locks", poll_s: float = 1.0,
             timeout_s: float | None = None) -> list[str] | None:
    """Hold ``n`` device slots exclusively and set CUDA_VISIBLE_DEVICES to them; return the ids held.

    Returns None (changing nothing) when ``n`` is 0, under Slurm, or when no GPU is visible.
    """
    if n <= 0 or os.environ.get("SLURM_JOB_ID"):
        return None
    pool = visible_pool()
    if not pool:
        return None
    if n > len(pool):
        raise RuntimeError(f"job asks for {n} GPUs but only {len(pool)} are visible ({','.join(pool)})")
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    start, announced = time.monotonic(), False
    while True:
        held = []
        for dev in pool:
            fh = open(lock_dir / f"gpu{dev}.lock", "a+")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            held.append((dev, fh))
            if len(held) == n:
                break
        if len(held) == n:
            _HELD.extend(fh for _, fh in held)
            ids = [dev for dev, _ in held]
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(ids)
            print(f"pinned to GPU {','.join(ids)} (lock files in {lock_dir})", file=sys.stderr, flush=True)
            return ids
        for _, fh in held:  # release partial holdings so two jobs cannot deadlock
            fh.close()
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"no {n} free GPU slot(s) among {pool} after {timeout_s:.0f} s ({lock_dir})")
        if not announced:
            print(f"waiting for {n} free GPU slot(s) among {pool}", file=sys.stderr, flush=True)
            announced = True
        time.sleep(poll_s)


def resolve_device(choice: str):
    """'auto' -> cuda if available else cpu; 'cuda' without a GPU is an error naming the key."""
    import torch

    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config key device: 'cuda' but torch sees no GPU; use 'auto' or 'cpu'")
    return torch.device(choice)
