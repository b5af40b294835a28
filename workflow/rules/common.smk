# Config validation (before any job starts), shared paths and resources.
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir).parent / "src"))

from debias.config import ConfigError as _ConfigError
from debias.config import check as _check_config
from debias.jobs import VERBOSE_ENV as _VERBOSE_ENV

# `snakemake --verbose` also gives job scripts their tracebacks (debias.jobs.start_job reads this variable)
if getattr(getattr(workflow, "output_settings", None), "verbose", False):
    os.environ[_VERBOSE_ENV] = "1"

try:
    _check_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml")
except _ConfigError as _err:
    if os.environ.get(_VERBOSE_ENV):
        raise
    # the message alone (it names every key and what was expected); the traceback under --verbose
    raise SystemExit(f"Error: {_err}")

# the CPU instruction set every job's kernels may use (config key cpu_isa; debias.determinism), exported before
# any job starts: the job processes, local or under Slurm, inherit it
from debias.determinism import cpu_isa_env as _cpu_isa_env

for _name, _value in _cpu_isa_env(config.get("cpu_isa")).items():
    os.environ[_name] = _value

# What the tables call this run's scale: "full" / "mini" only where the protocol is the shipped config's
from debias.scale import scale_label as _scale_label
from debias.scale import shipped_config as _shipped_config

_shipped = _shipped_config(config, Path(workflow.basedir).parent)
SCALE, _protocol_diff = _scale_label(config, Path(workflow.basedir).parent, _shipped)
_shipped_results = _shipped.get("results")
if _protocol_diff and config["results"] == _shipped_results:
    raise SystemExit(f"Error: this config's protocol differs from the shipped one for scale: {config['scale']} (in "
                     f"{', '.join(_protocol_diff[:8])}{' ...' if len(_protocol_diff) > 8 else ''}) but writes to its "
                     f"results folder, {_shipped_results}, over the shipped results: set `results:` to another "
                     f"folder, e.g. {_shipped_results}-custom")
if _protocol_diff:
    print(f"NOTE: the protocol differs from the shipped config for scale: {config['scale']} in "
          f"{', '.join(_protocol_diff[:8])}{' ...' if len(_protocol_diff) > 8 else ''}; tables and figures say "
          "'custom scale'", file=sys.stderr)

RESULTS = config["results"]
BENCH_JOBS = f"{RESULTS}/benchmarks/jobs"  # Snakemake's benchmark file of every training job
SRC = str(Path(workflow.basedir).parent / "src")


SCHEDULER_KEYS = ("slurm_partition", "gres", "gpu_model", "constraint", "qos", "cpus_per_gpu", "slurm_extra")

# GPU slots: every device has `resources.gpu_slots_per_device` of them. `--resources gpu=N` becomes N x that many
# `gpu_slot`s, which Snakemake then counts: a job of a kind with `gpu_slots: k` (k < per device) takes k, so
# several small jobs share a device; any other GPU job takes a whole device (all its slots, and `gpu: 1`).
GPU_SLOTS_PER_DEVICE = config["resources"].get("gpu_slots_per_device", 1)
if "gpu" in workflow.global_resources:
    _gpus = workflow.global_resources["gpu"].value
    if isinstance(_gpus, int):
        workflow.register_resource("gpu_slot", _gpus * GPU_SLOTS_PER_DEVICE)


# GPU jobs given no GPU: Snakemake caps each job's `gpu` at the --resources total, so with gpu=0 no job is pinned to
# a device and every job trains on whatever torch sees (the CPU on a node without GPUs) without a word
_gpu_kinds = [k for k, r in config["resources"].items() if isinstance(r, dict) and r.get("gpu", 0) > 0]
if (_gpu_kinds and config["device"] != "cpu" and not workflow.non_local_exec
        and "gpu" in workflow.global_resources and workflow.global_resources["gpu"].value == 0):
    print(f"WARNING: --resources gpu=0, but config resources {', '.join(_gpu_kinds)} ask for GPUs (device: "
          f"{config['device']!r}): no training job is pinned to a GPU; on a machine without one they all train on "
          "the CPU (hours to days at full scale), on one with GPUs they all share the first. Give --resources "
          "gpu=<number of GPUs>, or set device: cpu to train on the CPU on purpose", file=sys.stderr)
elif _gpu_kinds and config["device"] != "cpu" and not workflow.non_local_exec:
    from debias.devices import visible_pool as _visible_pool

    if not _visible_pool():
        print(f"WARNING: config resources {', '.join(_gpu_kinds)} ask for GPUs (device: {config['device']!r}) but "
              "none is visible here (nvidia-smi lists none and CUDA_VISIBLE_DEVICES names none): every training job will "
              "train on the CPU (each job's log and metrics.json name its device)", file=sys.stderr)


def _shared_gpu(wildcards):
    """A job on a share of a device counts no whole GPU locally; submitted to a cluster (its own allocation) it
    asks for one GPU."""
    return 1 if workflow.non_local_exec else 0


def res(kind, processes=1):
    """Resources of one kind of job (train, train_small, prepare, prepare_photo, aggregate) as the config gives them.

    mem_mb (times `processes`, for a job that runs that many processes, each the size of one job of its kind) and
    runtime always; for a kind with `gpu`, its `gpu_slot` count and `gpu` (see above); the Slurm keys as given; a
    `gres` request replaces `gpu` (the Slurm plugin rejects both together).
    """
    r = config["resources"][kind]
    out = {"mem_mb": r["mem_mb"] * processes, "runtime": r["runtime"]}
    out.update({k: r[k] for k in SCHEDULER_KEYS if k in r})
    if r.get("gpu", 0) > 0:
        shared = r.get("gpu_slots", GPU_SLOTS_PER_DEVICE) < GPU_SLOTS_PER_DEVICE
        out["gpu_slot"] = r.get("gpu_slots", GPU_SLOTS_PER_DEVICE) if shared else r["gpu"] * GPU_SLOTS_PER_DEVICE
        if "gres" not in r:
            out["gpu"] = _shared_gpu if shared else r["gpu"]
    return out


def threads_of(kind):
    return config["resources"][kind]["threads"]


def report_label(what):
    """The labels of a report entry: one only, `what`, which says what the entry is and which table or figure of
    the paper it reproduces. One label, not several: Snakemake's report (9.27) turns any label after the first
    that has exactly two values, each on half of the listed entries, into a toggle, and then cannot show the
    entries of the value not toggled (the listing raises and the page goes blank). With one label no listing,
    search results included, can have such a toggle."""
    return {"what": what}


wildcard_constraints:
    sigma2=r"\d\.\d{3}",
    method=r"[A-Za-z0-9_]+",
    seed=r"\d+",


# Pretrained weights (config key pretrained): <root>/<name>-<sha256 prefix>.pth, one file per weights that a model
# starts from (coco and waterbirds `model.weights`), a declared input of every rule that builds such a model.
import re as _re

from debias.data.pretrained import experiment_file as _pretrained_file
from debias.data.pretrained import missing as _pretrained_missing
from debias.data.pretrained import settings as _pretrained_settings

PRETRAINED = _pretrained_settings(config)
PRETRAINED_MISSING = _pretrained_missing(config)


def pretrained_input(section):
    """{'weights': file} for a training rule's input when the experiment's model starts from pretrained weights."""
    path = _pretrained_file(config, section)
    return {} if path is None else {"weights": path}


# Manifests of the raw data (debias.data.manifest): every file a prepare rule reads, with its size and mtime, in
# <results>/manifests/<dataset>.tsv, an input of the prepare rules. Rewritten while the DAG is built only when a raw
# file changed (so a replaced or corrupted image reruns its prepare and what depends on it, and nothing else);
# written by rule data_manifest where a job of this run writes the raw data first (downloads, the mini scale).
from debias.data import manifest as _manifest

MANIFESTS = f"{RESULTS}/manifests"
RAW_DATASETS = _manifest.sources(config)


def manifest_input(name):
    """Input function of a prepare rule: the manifest of raw dataset `name`, refreshed from the disk (by the main
    process only, not by a job's); none while its files are missing and no rule writes them (the prepare rule then
    reports them)."""

    def manifest(wildcards):
        anchors = RAW_DATASETS[name].anchors if name in RAW_DATASETS else ()
        written = any(r.is_producer(a) for a in anchors for r in workflow.rules)
        return _manifest.manifest_input(config, name, f"{MANIFESTS}/{name}.tsv", workflow.is_main_process, written)

    return manifest
