"""Where a number came from: code version, library versions, device."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from debias.determinism import CPU_ISA_VARIABLES


def git_commit() -> str:
    """HEAD of the repository this package lives in, with '+dirty' if the work tree has changes."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment(device) -> dict:
    import torch

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {
        "device": str(device),
        "device_name": name,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        # the instruction set of PyTorch's CPU kernels and the caps of cpu_isa (debias.determinism)
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_isa_env": {k: os.environ[k] for k in CPU_ISA_VARIABLES if k in os.environ},
        "git_commit": git_commit(),
        # which GPU(s) the job was pinned to (docs/full_scale.md, "GPUs"), and the Slurm job it ran in
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
