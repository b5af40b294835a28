"""Deterministic training where the config asks for it (``train.deterministic``, default on).

On CPU, PyTorch's kernels are deterministic already; on CUDA this turns off cuDNN's autotuner and its
non-deterministic algorithms, makes cuBLAS use a fixed workspace (``CUBLAS_WORKSPACE_CONFIG``, read when cuBLAS
first starts, so this runs before the first matrix product of the job) and asks PyTorch for deterministic
implementations everywhere. An operation without one is reported with a warning in the job log rather than
stopping the run (``warn_only``): its name tells which number may differ between two runs on a GPU.

On CPU the numbers of a run still depend on the instruction set the kernels use: PyTorch's own kernels and
oneDNN's convolutions pick AVX2 or AVX-512 code by what the processor has, and the two round differently; the
mini runs (a few hundred steps on a few hundred images) amplify that into different tables on two machines
(measured: on an AVX-512 AMD EPYC every mini table of the README came out different; capped at AVX2, they came
back to the last digit). ``cpu_isa: avx2`` (config/mini.yaml) caps both at AVX2 for every job of the run
(``cpu_isa_env``; the Snakefile exports it before any job starts). MKL's matrix products are left to MKL: it runs
its AVX2 code on AMD processors whatever they have, and its reproducible mode (``MKL_CBWR=AVX2``) is another code
path again (with it the mini L2RW grid changed), so on an Intel processor with AVX-512 the matrix products, and
the mini tables, may still differ.
"""

from __future__ import annotations

import os

CUBLAS_WORKSPACE = ":4096:8"
# the variables that cap each CPU kernel library at one instruction set; read when the library first starts
CPU_ISA_ENV = {"avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}
# what a run records of them (provenance.environment), with MKL's reproducibility switch, set by hand if at all
CPU_ISA_VARIABLES = (*CPU_ISA_ENV["avx2"], "MKL_CBWR")


def cpu_isa_env(isa: str | None) -> dict[str, str]:
    """The environment that caps PyTorch's and oneDNN's CPU kernels at ``isa`` (None: each library's own choice)."""
    if isa is None:
        return {}
    if isa not in CPU_ISA_ENV:
        raise ValueError(f"config key cpu_isa: {isa!r}; expected null or one of {', '.join(CPU_ISA_ENV)}")
    return dict(CPU_ISA_ENV[isa])


def configure(deterministic: bool) -> dict[str, object]:
    """Apply the setting to this process; returns what was set, for metrics.json."""
    import torch

    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    # float32 convolutions in float32 on a GPU: cuDNN's default is TF32 (10-bit mantissa) on Ampere and later,
    # which the papers' GPUs did not have; the small networks are launch-bound, so it gains them nothing, and the
    # ResNet-50s run in bf16 autocast anyway (float32 matrix products are IEEE by PyTorch's default already).
    # The flag of the older API: torch 2.11-2.14 read it alike, where setting the newer per-operator
    # fp32_precision alone makes a later read of allow_tf32 raise
    torch.backends.cudnn.allow_tf32 = False
    return {
        "deterministic": deterministic,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }
