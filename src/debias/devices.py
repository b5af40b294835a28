"""Device choice and GPU pinning for jobs that Snakemake runs side by side.

Snakemake counts GPUs (``--resources gpu=N``) but never says which one a job should use, so two concurrent
jobs would both land on ``cuda:0``. ``pin_gpus`` runs before torch initialises CUDA: it takes an exclusive
``flock`` on lock files, one per slot of a device, and exports the devices it holds as ``CUDA_VISIBLE_DEVICES``:
a job that needs a whole device takes all its slots, a small one (``resources.<kind>.gpu_slots``) only its share,
so several small jobs share a device. The kernel drops the locks when the process ends, however it ends. Under
Slurm the allocation's devices are used as given. This module must not import torch.
"""

from __future__ import annotations

import fcntl
import os
import random
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
             timeout_s: float | None = None, slots: int | None = None, slots_per_device: int = 1) -> list[str] | None:
    """Hold device slots exclusively and set CUDA_VISIBLE_DEVICES to their devices; return the device ids held.

    Every device has ``slots_per_device`` slots, one lock file each (``gpu<id>.slot<k>.lock``). A job takes either
    ``n`` whole devices (every slot of each), or, with ``slots`` < ``slots_per_device``, that many slots of one
    device, shared with other such jobs: it goes to the device with the fewest free slots that still has enough
    (best fit), so that small jobs pack together and leave whole devices to the jobs that need one. Returns None
    (changing nothing) when nothing is asked for, under Slurm (the allocation's devices are used as given), or
    when no GPU is visible.
    """
    partial = slots is not None and 0 < slots < slots_per_device
    if (n <= 0 and not partial) or os.environ.get("SLURM_JOB_ID"):
        return None
    pool = visible_pool()
    if not pool:
        return None
    n_devices, need = (1, slots) if partial else (n, slots_per_device)
    if n_devices > len(pool):
        raise RuntimeError(f"job asks for {n_devices} GPUs but only {len(pool)} are visible ({','.join(pool)})")
    what = f"{need} of {slots_per_device} slots of a GPU" if partial else f"{n_devices} whole GPU(s)"
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    start, announced = time.monotonic(), False
    while True:
        free = {dev: _try_slots(lock_dir, dev, slots_per_device) for dev in pool}  # held while we choose
        fits = [dev for dev in pool if len(free[dev]) >= need]
        if len(fits) >= n_devices:
            chosen = sorted(fits, key=lambda d: len(free[d]))[:1] if partial else fits[:n_devices]
            for dev in pool:
                keep = need if dev in chosen else 0
                for fh in free[dev][keep:]:
                    fh.close()
                _HELD.extend(free[dev][:keep])
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(chosen)
            print(f"pinned to GPU {','.join(chosen)} ({what}; lock files in {lock_dir})", file=sys.stderr, flush=True)
            return chosen
        for held in free.values():  # release everything so that two jobs cannot deadlock
            for fh in held:
                fh.close()
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"no {what} free among {pool} after {timeout_s:.0f} s ({lock_dir})")
        if not announced:
            print(f"waiting for {what} among {pool}", file=sys.stderr, flush=True)
            announced = True
        time.sleep(poll_s * random.uniform(0.5, 1.5))  # jitter: two waiting jobs do not probe in lockstep


def _try_slots(lock_dir: Path, dev: str, slots_per_device: int) -> list:
    """The slot locks of ``dev`` that are free, taken (open files holding an exclusive flock)."""
    held = []
    for k in range(slots_per_device):
        fh = open(lock_dir / f"gpu{dev}.slot{k}.lock", "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            continue
        held.append(fh)
    return held


def resolve_device(choice: str):
    """'auto' -> cuda if available else cpu; 'cuda' without a GPU is an error naming the key. The job log says
    which device the job trains on (metrics.json's ``device`` / ``device_name`` say it too)."""
    import torch

    device = _resolve(choice)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "the CPU"
    print(f"device: {device} ({name}; config key device: {choice!r}, CUDA_VISIBLE_DEVICES="
          f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r})", file=sys.stderr, flush=True)
    return device


def _resolve(choice: str):
    import torch

    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        pool = visible_pool() if os.environ.get("CUDA_VISIBLE_DEVICES") != "" else []
        if pool:
            print(f"warning: config key device is 'auto' and this node has GPUs (nvidia-smi or CUDA_VISIBLE_DEVICES "
                  f"lists {','.join(pool)}), but torch {torch.__version__} (CUDA {torch.version.cuda}) "
                  "cannot use them (a driver older than that CUDA?): training on the CPU", file=sys.stderr, flush=True)
        return torch.device("cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config key device: 'cuda' but torch sees no GPU; use 'auto' or 'cpu'")
    return torch.device(choice)
