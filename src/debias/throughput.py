"""Training throughput of every experiment's network at its full-scale settings, on this machine's device.

    python -m debias.throughput [--config config/config.yaml] [--seconds 8] [--only coco,waterbirds]
                                [--out results/benchmarks/throughput_manual.csv]

For every (experiment, table row) of the config, and a few variants worth knowing (a photo network trained
whole instead of head-only, deterministic kernels off, ``torch.compile`` for the small networks, colored MNIST's
35 runs of every row and FairFace's baseline and l2rw runs of every share batched in one model), it builds the
method exactly as a training job does, from the experiment's task (``debias.tasks``: its backbone, its synthetic
split of the stored shapes and dtypes kept on the device, its training view, e.g. COCO's device-side crop / flip /
normalise; bf16 autocast and channels_last as configured), takes warm-up steps, then as many timed steps as fit in
``--seconds``. Per row: steps/s (of one run; a batched case counts every run of the batch, and its ms/step is one
batched step), images/s, peak GPU memory, the mean GPU utilisation sampled by NVML during the timed steps (empty
when NVML is not there), the device's name. The photo networks start from random weights (the ImageNet weights
cannot be fetched offline and do not change the cost).

``--processes K`` runs K copies of one case (``--case experiment/row``) at once, each in its own process on the
same device, and reports their summed rate: what packing several small jobs onto one GPU gains.

A second file, ``<out stem>_projection.csv``, divides each table row's runs × steps per run (from the config) by
the row's measured rate: the device time the row would take *at one run at a time*, and, where the row's runs
were also measured batched, at that batched rate; labelled a projection, never a measured run time (colored
MNIST, FairFace, the L2RW grid; the photo experiments' images per second speak for themselves).

By hand it writes ``results/benchmarks/throughput_manual.csv``; the rule ``throughput`` writes
``<results>/benchmarks/throughput.csv`` (and refuses to be overwritten by hand, as ``debias.benchmark``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from debias.benchmark import device_name
from debias.io import write_text

RULE_OUT = "benchmarks/throughput.csv"
MANUAL_OUT = "results/benchmarks/throughput_manual.csv"
PROJECTION_HEADER = ["experiment", "row", "variant", "runs", "steps_per_run", "steps_per_s", "projected_hours",
                     "device"]
HEADER = ["experiment", "row", "method", "variant", "model", "batch_size", "steps_per_s", "images_per_s",
          "ms_per_step", "peak_memory_mb", "gpu_util_pct", "steps_timed", "device", "status"]


@dataclass
class Case:
    experiment: str  # also the task (dataset) it trains on, ``debias.tasks.get(experiment)``
    row: str  # the config row (table line)
    method: str  # registered class
    hp: dict[str, Any]
    model: str  # the network, in words (``Task.network``)
    batch_size: int
    model_cfg: dict[str, Any]  # the config's model entry (``Task.backbone``, ``Task.synthetic``)
    train: dict[str, Any]  # the config's train entry (``Task.train_view``)
    n_train: int  # samples of the synthetic training split
    image: dict[str, Any] | None = None  # the dataset's image settings (``Task.synthetic``, ``Task.train_view``)
    channels_last: bool = False
    deterministic: bool = True
    compile: str = "none"  # Method.COMPILE_MODES: none | default | reduce-overhead | max-autotune-no-cudagraphs
    variant: str = "as configured"
    batch_runs: int = 1  # > 1: that many runs batched in one model (debias.batched); a step advances every one


# -- the cases of a config ------------------------------------------------------------------------------------


@dataclass
class Experiment:
    """An experiment of the config as the benchmark times it: its task (named as the experiment) and config entries."""
    name: str
    rows: list[str]
    hparams: dict[str, dict[str, Any]]  # row -> its entry
    model: dict[str, Any]
    train: dict[str, Any]
    n_train: int
    image: dict[str, Any] | None = None
    hp: dict[str, Any] = field(default_factory=dict)  # what its training jobs add to every row's hyperparameters
    runs: int = 1  # a row's runs, batched in one model in its "k runs batched" variants
    batched: tuple[str, ...] | None = ()  # the methods also timed with their runs batched (None: every batchable)
    small: bool = False  # its torch.compile variants are timed (the photo networks': not worth the compile time)
    variants: bool = True  # False: the variants would repeat another experiment's (the same network)


def experiments(cfg: dict[str, Any]) -> list[Experiment]:
    """The experiments of ``cfg``: where each one's rows, hyperparameters, model, training settings are."""
    out = []
    if "colored_mnist" in cfg:
        cm = cfg["colored_mnist"]
        # every row's 35 runs (5 seeds x 7 sigma2) as one batched model: with these the projection gives the whole
        # table's time batched (the adversarial rows cost 1.5-2 baseline steps)
        out.append(Experiment("colored_mnist", cm["methods"], cm["hparams"], cm["model"], cm["train"],
                              mnist_train_size(cfg), runs=len(cm["seeds"]) * len(cm["sigma2"]), batched=None,
                              small=True))
    if "reweighting" in cfg:
        rw = cfg["reweighting"]
        for name in ("fairface", "l2rw_mnist"):
            sec = rw[name]
            # FairFace's runs of every share (130 at full scale) batched: the baseline, whose step costs about what
            # the other weighting rows' do, and l2rw, the sweep's costliest row; the L2RW grid's LeNet is
            # FairFace's: its variants would repeat FairFace's
            out.append(Experiment(name, rw["methods"], sec["hparams"], rw["model"], rw["train"], sec["n_train"],
                                  {"size": sec["image_size"]} if "image_size" in sec else None,
                                  runs=len(rw["seeds"]) * len(sec["shares"]), batched=("baseline", "l2rw"),
                                  small=True, variants=name == "fairface"))
    for name, rows, n_train in (("coco", "augmentations", 4096), ("waterbirds", "methods", 4795)):
        sec = cfg.get(name)
        if sec is None or sec["model"]["arch"] != "resnet50":
            continue  # the mini configs' small ResNets: the CPU step-cost benchmark covers them
        hp = {"autocast": sec["train"].get("autocast", True)}
        if name == "coco":
            hp.update(lr=sec["table3_lr"], pairing="random")
        out.append(Experiment(name, sec[rows], sec["hparams"], sec["model"], sec["train"], n_train, sec["image"], hp))
    return out


def cases_from_config(cfg: dict[str, Any]) -> list[Case]:
    """Every row of every experiment as configured (and, per row, the whole network where it trains its head only,
    fisher_flat's full trace), then each experiment's variants."""
    from debias import tasks
    from debias.config import method_entry

    out: list[Case] = []
    extra: list[Case] = []
    for e in experiments(cfg):
        mine = []
        for row in e.rows:
            cls, hp = method_entry(row, e.hparams[row])
            hp = {**hp, **e.hp}
            if cls == "fisher_flat" and hp.get("epsilon") is None:
                hp = {**hp, "warmup_epochs": 0, "epsilon": 1.0}  # time the constrained phase (the costly one)
            base = Case(e.name, row, cls, hp, tasks.get(e.name).network(e.model),
                        hp.get("batch_size", e.train["batch_size"]), e.model, e.train, e.n_train, e.image,
                        channels_last=e.train.get("channels_last", False),
                        deterministic=e.train.get("deterministic", True))
            mine.append(base)
            if hp.get("train_layers") == "head":
                mine.append(replace(base, hp={**hp, "train_layers": "all"}, variant="whole network trains"))
            if cls == "fisher_flat" and hp["trace"] == "last_layer":
                mine.append(replace(base, hp={**hp, "trace": "full", "trace_chunk": hp.get("trace_chunk", 16)},
                                    variant="trace: full"))
        out += mine
        if e.variants and mine:
            extra += variants(e, mine)
    return out + extra


def variants(e: Experiment, cases: list[Case]) -> list[Case]:
    """Variants worth knowing, of the experiment's first row: the whole network trained (at batch 128 too) where a
    row may train its head only, what deterministic kernels cost, what compiling a small network gains; and its
    rows with their runs batched."""
    from debias import methods
    from debias.batched import batchable

    c, out = cases[0], []
    if "train_layers" in c.hp:
        c = replace(c, hp={**c.hp, "train_layers": "all"}, variant="whole network trains")
        out.append(replace(c, batch_size=128, variant="whole network trains; batch 128"))
    if c.deterministic:
        out.append(replace(c, deterministic=False, variant=f"{c.variant}; deterministic off".replace(
            "as configured; ", "")))
    if e.small:
        out += [replace(c, compile=m, variant=f"torch.compile mode={m}") for m in ("default", "reduce-overhead")]
    out += [replace(x, batch_runs=e.runs, channels_last=False, variant=f"{e.runs} runs batched (torch.func)")
            for x in cases if x.variant == "as configured" and batchable(methods.get(x.method))
            and (e.batched is None or x.method in e.batched)]
    return out


# -- measuring ------------------------------------------------------------------------------------------------


class GpuSampler:
    """Mean GPU utilisation (%) over a window, sampled by NVML every 50 ms; None without NVML or a GPU."""

    def __init__(self, device: torch.device):
        self.samples: list[int] = []
        self.handle = None
        if device.type != "cuda":
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            index = device.index if device.index is not None else torch.cuda.current_device()
            self.handle = nvml_handle(pynvml, str(torch.cuda.get_device_properties(index).uuid), index)
            self.nvml = pynvml
        except Exception:  # noqa: BLE001 - NVML missing or unusable: utilisation stays unknown
            self.handle = None
        self._stop = threading.Event()

    def __enter__(self):
        if self.handle is not None:
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.05):
            self.samples.append(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu)

    def __exit__(self, *exc):
        if self.handle is not None:
            self._stop.set()
            self.thread.join()

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.samples) if self.samples else None


def nvml_handle(nvml, uuid: str, index: int):
    """NVML's handle of the device whose UUID torch reports. NVML numbers every GPU of the node, ignoring
    CUDA_VISIBLE_DEVICES, so torch's device 0 of a job pinned to GPU 3 is NVML's device 3, not its device 0;
    the UUID names the same device in both (NVML writes it with a ``GPU-`` prefix). Falls back to the index."""
    def norm(u):
        u = u.decode() if isinstance(u, bytes) else str(u)
        return u.lower().removeprefix("gpu-")

    for i in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(i)
        if norm(nvml.nvmlDeviceGetUUID(handle)) == norm(uuid):
            return handle
    return nvml.nvmlDeviceGetHandleByIndex(index)


def index_stream(method, n: int, batch_size: int, device: torch.device, seed: int = 0):
    """Batch indices forever, epoch after epoch, as the training loops draw them (``engine.epoch_indices``), full
    batches only: the timing is per batch size."""
    from debias.engine import epoch_indices

    epoch = 0
    while True:
        yield from epoch_indices(method, n, batch_size, seed, epoch, n // batch_size, device)
        epoch += 1


_DATA: dict = {}


def synthetic_splits(case: Case, task, device: torch.device) -> dict[str, dict[str, torch.Tensor]]:
    """The task's synthetic splits on ``device``: training of ``n_train`` samples, the others (e.g. l2rw's meta set)
    of 10; made once per experiment and shared by its cases."""
    key = (case.experiment, case.n_train, json.dumps([case.model_cfg, case.image], sort_keys=True), str(device))
    if key not in _DATA:
        _DATA.clear()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        _DATA[key] = {split: {k: v.to(device) for k, v in task.synthetic(
            case.n_train if split == "train" else 10, case.model_cfg, image=case.image).items()}
            for split in task.fields}
    return _DATA[key]


def setup_case(case: Case, device: torch.device):
    """(method, batch): the case's method built, attached and compiled as its training job does it, on ``device``,
    and a function giving its next training batch (made by the task's training view where it has one)."""
    from debias import methods, tasks
    from debias.batching import make_batch
    from debias.determinism import configure

    configure(case.deterministic)
    torch.manual_seed(0)
    task = tasks.get(case.experiment)
    if case.batch_size < task.min_batch:
        raise ValueError(f"batch size {case.batch_size}: {case.experiment} trains no batch under {task.min_batch}")
    splits = synthetic_splits(case, task, device)
    train = splits["train"]
    cls = methods.get(case.method)
    # random weights (the cost does not depend on them; the weights file is not fetched for a benchmark)
    model_cfg = {**case.model_cfg, "weights": None} if "weights" in case.model_cfg else case.model_cfg

    def build():
        with device:  # made where they train (on ``meta``, .to() would make parameters the optimisers do not hold)
            return cls(task.backbone(model_cfg, splits), case.hp).to(device)

    method = build()
    stacked = None
    if case.batch_runs > 1:
        from debias.batched import StackedSplits, attach, stack_methods

        members = [build() for _ in range(case.batch_runs)]
        method = stack_methods(members, method)
        attach(method, members, [splits] * case.batch_runs)
        stacked = StackedSplits([train] * case.batch_runs)
    if case.channels_last:
        method.modules.to(memory_format=torch.channels_last)
    if stacked is None:
        method.attach(splits)
    method.compile(case.compile)
    n = train["y"].shape[0]
    method.on_epoch_start(0, 1, -(-n // case.batch_size))
    view = task.train_view({"train": {**case.train, "channels_last": case.channels_last},
                            **({"image": case.image} if case.image else {})})
    stream = index_stream(method, n, case.batch_size, device)

    def batch():
        if stacked is not None:
            return stacked.batch(torch.stack([next(stream) for _ in range(case.batch_runs)]))
        return make_batch(train, next(stream), case.channels_last, view)

    return method, batch


def measure(case: Case, device: torch.device, seconds: float, warmup: int) -> dict[str, Any]:
    from debias.engine import peak_memory_mb, reset_peak_memory

    method, batch = setup_case(case, device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    method.train(True)
    t_warm, done = time.perf_counter(), 0
    least = warmup if case.compile != "none" else 2  # compiled: the graphs are recorded over the first calls
    while done < max(warmup, 2) and (done < least or time.perf_counter() - t_warm < 2 * seconds):
        method.update(batch())  # warm-up: kernels chosen, allocator filled, compilation done
        sync()
        done += 1
    step_s = (time.perf_counter() - t_warm) / done
    reset_peak_memory(device)
    steps, chunk = 0, max(1, min(10, int(seconds / 4 / step_s)))  # the clock is read every `chunk` steps
    with GpuSampler(device) as util:
        t0 = time.perf_counter()
        while True:
            for _ in range(chunk):
                method.update(batch())
            steps += chunk
            sync()
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                break

    rate = steps / elapsed * case.batch_runs  # run-steps: a batched step advances every run of the batch
    return {"steps_per_s": rate, "images_per_s": rate * case.batch_size, "ms_per_step": 1000 * elapsed / steps,
            "peak_memory_mb": peak_memory_mb(device), "gpu_util_pct": util.mean, "steps_timed": steps}


def row_of(case: Case, device: torch.device, result: dict[str, Any] | None, status: str) -> dict[str, Any]:
    return {"experiment": case.experiment, "row": case.row, "method": case.method, "variant": case.variant,
            "batch_runs": case.batch_runs, "model": case.model, "batch_size": case.batch_size, **(result or {}),
            "device": device_name(device), "status": status}


def run_cases(cases: list[Case], device: torch.device, seconds: float, warmup: int, on_row=None) -> list[dict]:
    rows = []
    for i, case in enumerate(cases, 1):
        label = f"[{i}/{len(cases)}] {case.experiment}/{case.row} ({case.variant})"
        print(f"{label} ...", file=sys.stderr, flush=True)
        try:
            result, status = measure(case, device, seconds, warmup), "ok"
            print(f"{label}: {result['steps_per_s']:.1f} steps/s, {result['images_per_s']:.0f} images/s, "
                  f"{result['peak_memory_mb']:.0f} MB, util {result['gpu_util_pct']}", file=sys.stderr, flush=True)
        except Exception as exc:  # noqa: BLE001 - a case that cannot run (e.g. out of memory) is reported, not fatal
            result, status = None, f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            print(f"{label}: {status}", file=sys.stderr, flush=True)
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        rows.append(row_of(case, device, result, status))
        if on_row:
            on_row(rows)
    return rows


# -- several processes on one device ---------------------------------------------------------------------------


def packed_threads(cfg: dict[str, Any]) -> int:
    """CPU threads of one process of a packed run: those of a small training job (``resources.train_small.threads``),
    which is what shares a device (K processes with every core each would contend for the CPU instead)."""
    return max(1, int(cfg.get("resources", {}).get("train_small", {}).get("threads", 1)))


def run_packed(config: str, case_key: str, processes: int, device: str, seconds: float, warmup: int,
               start_delay: float = 45.0) -> dict:
    """K processes timing the same case at the same moment (``start_delay`` seconds from now: after every process
    has imported torch and warmed up, compiled too), each with a small training job's CPU threads
    (``packed_threads``); their summed steps/s."""
    start_at = time.time() + start_delay
    cmd = [sys.executable, "-m", "debias.throughput", "--config", config, "--case", case_key, "--device", device,
           "--seconds", str(seconds), "--warmup", str(warmup), "--start-at", str(start_at), "--json"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    results = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"packed run of {case_key} failed (exit {p.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return {"processes": processes, "steps_per_s_total": sum(r["steps_per_s"] for r in results),
            "steps_per_s_each": [r["steps_per_s"] for r in results], "case": case_key,
            "late_s_max": max(r.get("late_s", 0.0) for r in results)}  # > 0: a process missed the common start


# -- projections ----------------------------------------------------------------------------------------------


def mnist_train_size(cfg: dict[str, Any]) -> int:
    """Training digits of the configured MNIST: the real 60,000, or the embedded ones left after the test digits."""
    if cfg["mnist"]["source"] == "embedded":
        from debias.data.mini.mnist import EMBEDDED_PER_CLASS

        return 10 * (EMBEDDED_PER_CLASS - cfg["mnist"]["test_per_class"])
    return 60_000


def projection(cfg: dict[str, Any], rows: list[dict]) -> list[dict]:
    """Device hours of each table row from its measured rates: at one run at a time (the row as configured), and
    with its runs batched k at a time where a batched case of the row was measured (its rate counts run-steps).
    A table whose every row was measured also gets two whole-table lines (row ``(whole table)``): every row one run
    at a time, and every row at its fastest measured variant."""
    rates: dict[tuple[str, str], dict[int, float]] = {}  # (experiment, row) -> {runs per batch: run-steps/s}
    for r in rows:
        k = r.get("batch_runs", 1)
        if r["status"] == "ok" and (r["variant"] == "as configured" or k > 1):
            rates.setdefault((r["experiment"], r["row"]), {})[k] = r["steps_per_s"]
    out = []

    def add(exp, row, runs, steps):
        for k, steps_per_s in sorted(rates.get((exp, row), {}).items()):
            variant = "one run at a time" if k == 1 else f"{k} runs batched"
            out.append({"experiment": exp, "row": row, "variant": variant, "runs": runs, "steps_per_run": steps,
                        "steps_per_s": steps_per_s, "projected_hours": runs * steps / steps_per_s / 3600})

    if "colored_mnist" in cfg:
        cm = cfg["colored_mnist"]
        steps_per_epoch = -(-mnist_train_size(cfg) // cm["train"]["batch_size"])
        for row in cm["methods"]:
            hp = cm["hparams"][row]
            add("colored_mnist", row, len(cm["sigma2"]) * len(cm["seeds"]), hp["epochs"] * steps_per_epoch)
    if "reweighting" in cfg:
        rw = cfg["reweighting"]
        for exp in ("fairface", "l2rw_mnist"):
            for row in rw["methods"]:
                extra = 1 if exp == "fairface" and row in rw["fairface"].get("balanced_reference", []) else 0
                add(exp, row, (len(rw[exp]["shares"]) + extra) * len(rw["seeds"]), rw[exp]["hparams"][row]["steps"])
    return out + whole_tables(cfg, out)


WHOLE_TABLE = "(whole table)"


def whole_tables(cfg: dict[str, Any], per_row: list[dict]) -> list[dict]:
    """Per table whose every configured row has a projection: the sum of its rows' device hours one run at a time,
    and the sum of each row's fastest variant."""
    rows_of = {"colored_mnist": cfg.get("colored_mnist", {}).get("methods", []),
               "fairface": cfg.get("reweighting", {}).get("methods", []),
               "l2rw_mnist": cfg.get("reweighting", {}).get("methods", [])}
    out = []
    for exp, rows in rows_of.items():
        mine = [p for p in per_row if p["experiment"] == exp]
        alone = {p["row"]: p["projected_hours"] for p in mine if p["variant"] == "one run at a time"}
        if not rows or set(alone) != set(rows):
            continue
        fastest = {row: min(p["projected_hours"] for p in mine if p["row"] == row) for row in rows}
        runs = sum(p["runs"] for p in mine if p["variant"] == "one run at a time")
        for variant, hours in (("every row one run at a time", alone), ("every row at its fastest variant", fastest)):
            out.append({"experiment": exp, "row": WHOLE_TABLE, "variant": variant, "runs": runs,
                        "steps_per_run": None, "steps_per_s": None, "projected_hours": sum(hours.values())})
    return out


# -- entry point ----------------------------------------------------------------------------------------------


def write_csv(rows: list[dict], out: str | Path, header: list[str]) -> None:
    def fmt(v):
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.4f}" if math.isfinite(v) else ""
        text = str(v)
        return f'"{text}"' if "," in text else text

    write_text(out, "\n".join([",".join(header)] + [",".join(fmt(r.get(h)) for h in header) for r in rows]) + "\n")


def load_config(path: str) -> dict[str, Any]:
    """The config as YAML (validated by the workflow when Snakemake runs; the GPU images lack jsonschema)."""
    import yaml

    with open(path) as fh:
        return yaml.safe_load(fh)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seconds", type=float, default=8.0, help="timed seconds per case")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps per case (x5 for compiled cases)")
    p.add_argument("--only", default="", help="comma-separated experiments (default: every one in the config)")
    p.add_argument("--compiled", choices=["with", "without", "only"], default="with",
                   help="the torch.compile variants: with the others, left out, or alone")
    p.add_argument("--case", default="", help="experiment/row[/variant]: one case")
    p.add_argument("--processes", type=int, default=0, help="with --case: K concurrent processes, summed rate")
    p.add_argument("--start-delay", type=float, default=45.0,
                   help="with --processes: seconds until the common timed start (longer for compiled cases)")
    p.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", default=MANUAL_OUT)
    args = p.parse_args(argv)
    cfg = load_config(args.config)
    device = torch.device(args.device)
    cases = select_cases(cfg, args.compiled)
    if args.only:
        keep = set(args.only.split(","))
        cases = [c for c in cases if c.experiment in keep]
    if args.case:
        exp, row, *variant = args.case.split("/")
        cases = [c for c in cases if (c.experiment, c.row) == (exp, row)
                 and c.variant == (variant[0] if variant else "as configured")]
        if not cases:
            p.error(f"--case {args.case}: no such case in {args.config}")
        if args.processes:
            print(json.dumps(run_packed(args.config, args.case, args.processes, args.device, args.seconds,
                                        args.warmup, args.start_delay)))
            return
        if args.json:  # one process of a packed run: warm up, wait for the common start, time
            case = cases[0]
            torch.set_num_threads(packed_threads(cfg))
            measure(case, device, 1.0, args.warmup)
            late_s = max(0.0, time.time() - args.start_at)
            time.sleep(max(0.0, args.start_at - time.time()))
            print(json.dumps({**measure(case, device, args.seconds, 0), "late_s": late_s}))
            return
    if Path(args.out).parts[-2:] == Path(RULE_OUT).parts:
        p.error(f"--out {args.out}: that is the pipeline's output (rule throughput), which Snakemake would then "
                f"take for up to date; write elsewhere (default {MANUAL_OUT})")
    measure_and_write(cfg, cases, device, args.seconds, args.warmup, args.out,
                      f"{Path(args.out).with_suffix('')}_projection.csv")


def select_cases(cfg: dict[str, Any], compiled: str = "with") -> list[Case]:
    """Every case of the config; ``compiled``: with the torch.compile variants, ``without`` them, or ``only`` them."""
    cases = cases_from_config(cfg)
    if compiled != "with":
        cases = [c for c in cases if (c.compile != "none") == (compiled == "only")]
    return cases


def measure_and_write(cfg: dict[str, Any], cases: list[Case], device: torch.device, seconds: float, warmup: int,
                      out_csv: str | Path, out_projection: str | Path) -> list[dict]:
    """Time every case (the CSV rewritten after each, so a stopped run keeps what it measured), then the
    projection. Both files name the device in every row."""
    rows = run_cases(cases, device, seconds, warmup, on_row=lambda r: write_csv(r, out_csv, HEADER))
    proj = [{**r, "device": device_name(device)} for r in projection(cfg, rows)]
    write_csv(proj, out_projection, PROJECTION_HEADER)
    print(f"wrote {out_csv} and {out_projection}", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
