"""What every pipeline job script does first: send its output to the job log, pin its GPU, set threads.

Must not import torch at module level: ``start_job`` pins the GPU before torch initialises CUDA.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path


def start_job(snakemake, gpu_lock_dir: str = ".snakemake/gpu-locks") -> None:
    """Redirect stdout/stderr to the rule's log (if any), pin GPUs, set torch's thread count."""
    if snakemake.log:
        path = Path(str(snakemake.log[0]))
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "w", buffering=1)
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        sys.stdout = sys.stderr = fh
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr, force=True)
    from debias.devices import pin_gpus

    pin_gpus(int(snakemake.resources.get("gpu", 0) or 0), gpu_lock_dir)
    import torch

    torch.set_num_threads(max(1, int(snakemake.threads)))
