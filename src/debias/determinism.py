"""Deterministic training where the config asks for it (``train.deterministic``, default on).

On CPU, PyTorch's kernels are deterministic already; on CUDA this turns off cuDNN's autotuner and its
non-deterministic algorithms, makes cuBLAS use a fixed workspace (``CUBLAS_WORKSPACE_CONFIG``, read when cuBLAS
first starts, so this runs before the first matrix product of the job) and asks PyTorch for deterministic
implementations everywhere. An operation without one is reported with a warning in the job log rather than
stopping the run (``warn_only``): its name tells which number may differ between two runs on a GPU.
"""

from __future__ import annotations

import os

CUBLAS_WORKSPACE = ":4096:8"


def configure(deterministic: bool) -> dict[str, object]:
    """Apply the setting to this process; returns what was set, for metrics.json."""
    import torch

    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    return {
        "deterministic": deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }
