"""What every pipeline job script does first: send its output to the job log, report errors, pin its GPU,
set threads.

Must not import torch at module level: ``start_job`` pins the GPU before torch initialises CUDA.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path

from debias.errors import InputError

# set (to anything but "" or "0") for full tracebacks of input errors; `snakemake --verbose` sets it for its jobs
VERBOSE_ENV = "DEBIAS_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def report_errors(console=None, log: str | None = None) -> None:
    """Install an excepthook for the job script (Python then exits with status 1).

    An InputError is shown as its message alone, ``Error: <message>``, in the job log (stderr) and on ``console``
    (the stream Snakemake shows, when stderr goes to the log); with DEBIAS_VERBOSE set, its traceback follows in
    the log. Any other exception is a bug or an environment problem: its traceback goes to the log as usual, and
    the console gets its one-line message and where the traceback is.
    """

    def hook(exc_type, exc, tb):
        first = f"Error: {exc}" if issubclass(exc_type, InputError) else f"Error: {exc_type.__name__}: {exc}"
        if issubclass(exc_type, InputError) and not verbose():
            text = f"{first}\n(for the traceback rerun with snakemake --verbose, or {VERBOSE_ENV}=1)\n"
        else:
            text = f"{first}\n" + "".join(traceback.format_exception(exc_type, exc, tb))
        sys.stderr.write(text)
        sys.stderr.flush()
        if console is not None:
            console.write(f"{first}\n" + (f"(job log: {log})\n" if log else ""))
            console.flush()

    sys.excepthook = hook


def start_job(snakemake, gpu_lock_dir: str = ".snakemake/gpu-locks") -> None:
    """Redirect stdout/stderr to the rule's log (if any), report input errors by their message, pin GPUs, set
    torch's thread count."""
    console, path = None, None
    if snakemake.log:
        console = os.fdopen(os.dup(2), "w", buffering=1)  # what Snakemake shows, before it becomes the log
        path = Path(str(snakemake.log[0]))
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "w", buffering=1)
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        sys.stdout = sys.stderr = fh
    report_errors(console, str(path) if path else None)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr, force=True)
    from debias.devices import pin_gpus

    per_device = int(getattr(snakemake, "config", {}).get("resources", {}).get("gpu_slots_per_device", 1))
    pin_gpus(int(snakemake.resources.get("gpu", 0) or 0), gpu_lock_dir,
             slots=int(snakemake.resources.get("gpu_slot", 0) or 0) or None, slots_per_device=per_device)
    import torch

    torch.set_num_threads(max(1, int(snakemake.threads)))
