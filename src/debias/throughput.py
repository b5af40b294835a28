"""Training throughput of every experiment's network at its full-scale settings, on this machine's device.

    python -m debias.throughput [--config config/config.yaml] [--seconds 8] [--only coco,waterbirds]
                                [--out results/benchmarks/throughput_manual.csv]

For every (experiment, table row) of the config, and a few variants worth knowing (a photo network trained
whole instead of head-only, deterministic kernels off, ``torch.compile`` for the small networks, colored MNIST's
35 runs of every row and FairFace's baseline and l2rw runs of every share batched in one model), it builds the
method exactly as a training job does, feeds it synthetic data of the real shapes and dtypes kept on the device
(uint8 images; the photo datasets through the device-side crop / flip / normalise pipeline, bf16 autocast and
channels_last as configured), takes warm-up steps, then as many timed steps as fit in ``--seconds``. Per row:
steps/s (of one run; a batched case counts every run of the batch, and its ms/step is one batched step),
images/s, peak GPU memory, the mean GPU utilisation sampled by NVML during the timed steps (empty when
NVML is not there), the device's name. The photo networks start from random weights (the ImageNet weights
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
from typing import Any, Callable

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
    experiment: str
    row: str  # the config row (table line)
    method: str  # registered class
    hp: dict[str, Any]
    model: str  # what network, in words
    make_backbone: Callable[[], Any]
    batch_size: int
    data: Callable[[torch.device], dict[str, dict[str, torch.Tensor]]]  # splits on the device
    photo: dict[str, Any] | None = None  # {"crop": int, "view": "train" | "eval"}: the device image pipeline
    channels_last: bool = False
    deterministic: bool = True
    compile: str = "none"  # Method.COMPILE_MODES: none | default | reduce-overhead | max-autotune-no-cudagraphs
    variant: str = "as configured"
    batch_runs: int = 1  # > 1: that many runs batched in one model (debias.batched); a step advances every one
    extra: dict[str, Any] = field(default_factory=dict)


# -- synthetic data of the real shapes ------------------------------------------------------------------------


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def colored_mnist_data(n: int, n_bins: int = 8):
    def make(device):
        g = _gen()
        train = {"x": torch.randint(0, 256, (n, 3, 28, 28), generator=g, dtype=torch.uint8),
                 "y": torch.randint(0, 10, (n,), generator=g),
                 "bias": torch.randint(0, n_bins, (n, 3, 14, 14), generator=g)}
        return {"train": {k: v.to(device) for k, v in train.items()}}
    return make


def lenet_data(n: int, image_size: int = 28, minority: float = 0.05):
    def make(device):
        g = _gen()
        y = (torch.rand(n, generator=g) < minority).long()
        train = {"x": torch.randint(0, 256, (n, 1, image_size, image_size), generator=g, dtype=torch.uint8), "y": y}
        val = {"x": torch.randint(0, 256, (10, 1, image_size, image_size), generator=g, dtype=torch.uint8),
               "y": torch.arange(10) % 2}
        return {"train": {k: v.to(device) for k, v in train.items()}, "val": {k: v.to(device) for k, v in val.items()}}
    return make


def coco_data(n: int, stored: int, num_objects: int):
    def make(device):
        g = _gen()
        train = {"x": torch.randint(0, 256, (n, 3, stored, stored), generator=g, dtype=torch.uint8),
                 "y": (torch.rand(n, num_objects, generator=g) < 0.04).float(),
                 "group": torch.randint(0, 2, (n,), generator=g)}
        return {"train": {k: v.to(device) for k, v in train.items()}}
    return make


def waterbirds_data(n: int, size: int, group_counts=(3498, 184, 56, 1057)):
    def make(device):
        g = _gen()
        weights = torch.tensor(group_counts, dtype=torch.float)
        group = torch.multinomial(weights, n, replacement=True, generator=g)
        train = {"x": torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8),
                 "y": group // 2, "group": group, "index": torch.arange(n)}
        return {"train": {k: v.to(device) for k, v in train.items()}}
    return make


# -- the cases of a config ------------------------------------------------------------------------------------


def cases_from_config(cfg: dict[str, Any]) -> list[Case]:
    from debias import methods
    from debias.batched import batchable
    from debias.config import method_entry
    from debias.models import colored_mnist_backbone, l2rw_lenet_backbone, resnet50_backbone

    out: list[Case] = []
    if "colored_mnist" in cfg:
        cm = cfg["colored_mnist"]
        m = cm["model"]
        make = lambda: colored_mnist_backbone(m["width"], 10, m["n_bins"], m["mean"], m["std"])  # noqa: E731
        data = colored_mnist_data(mnist_train_size(cfg), m["n_bins"])
        for row in cm["methods"]:
            cls, hp = method_entry(row, cm["hparams"][row])
            out.append(Case("colored_mnist", row, cls, hp, f"conv net width {m['width']}", make,
                            hp.get("batch_size", cm["train"]["batch_size"]), data,
                            channels_last=cm["train"].get("channels_last", False),
                            deterministic=cm["train"].get("deterministic", True)))
    if "reweighting" in cfg:
        rw = cfg["reweighting"]
        size = rw["fairface"]["image_size"]
        for exp, n, image_size in (("fairface", rw["fairface"]["n_train"], size),
                                   ("l2rw_mnist", rw["l2rw_mnist"]["n_train"], 28)):
            make = (lambda s: lambda: l2rw_lenet_backbone(1, 1, rw["model"]["width"], s))(image_size)
            for row in rw["methods"]:
                cls, hp = method_entry(row, rw[exp]["hparams"][row])
                out.append(Case(exp, row, cls, hp, f"LeNet width {rw['model']['width']}", make,
                                hp.get("batch_size", rw["train"]["batch_size"]), lenet_data(n, image_size),
                                deterministic=rw["train"].get("deterministic", True)))
    for exp in ("coco", "waterbirds"):
        if exp not in cfg:
            continue
        sec = cfg[exp]
        if sec["model"]["arch"] != "resnet50":
            continue  # the mini configs' small ResNets: the CPU step-cost benchmark covers them
        rows = sec["augmentations"] if exp == "coco" else sec["methods"]
        if exp == "coco":
            n_out = 79
            make = lambda: resnet50_backbone(79, None)  # noqa: E731
            data = coco_data(4096, sec["image"]["stored"], n_out)
            photo = {"crop": sec["image"]["crop"], "view": "train"}
        else:
            make = lambda: resnet50_backbone(2, None)  # noqa: E731
            data = waterbirds_data(4795, sec["image"]["crop"])
            photo = {"crop": sec["image"]["crop"], "view": "eval"}  # the reference trains on the centre crop
        for row in rows:
            cls, hp = method_entry(row, sec["hparams"][row])
            hp = {**hp, "autocast": sec["train"].get("autocast", True)}
            if exp == "coco":
                hp = {**hp, "lr": sec["table3_lr"], "pairing": "random"}
            if cls == "fisher_flat" and hp.get("epsilon") is None:
                hp = {**hp, "warmup_epochs": 0, "epsilon": 1.0}  # time the constrained phase (the costly one)
            base = Case(exp, row, cls, hp, "ResNet-50", make, hp.get("batch_size", sec["train"]["batch_size"]), data,
                        photo=photo, channels_last=sec["train"].get("channels_last", False),
                        deterministic=sec["train"].get("deterministic", True))
            out.append(base)
            if exp == "coco" and hp.get("train_layers") == "head":
                out.append(replace(base, hp={**hp, "train_layers": "all"}, variant="whole network trains"))
            if cls == "fisher_flat" and hp["trace"] == "last_layer":
                out.append(replace(base, hp={**hp, "trace": "full", "trace_chunk": hp.get("trace_chunk", 16)},
                                   variant="trace: full"))
    # variants worth knowing: what deterministic kernels cost, and what compiling the small networks gains
    # (the L2RW grid's LeNet is FairFace's: its variants would repeat FairFace's)
    firsts = {}
    for c in out:
        firsts.setdefault(c.experiment, c)
    extra = []
    for exp, c in firsts.items():
        if exp == "l2rw_mnist":
            continue
        if exp == "coco":
            c = replace(c, hp={**c.hp, "train_layers": "all"}, variant="whole network trains")
            extra.append(replace(c, batch_size=128, variant="whole network trains; batch 128"))
        if c.deterministic:
            extra.append(replace(c, deterministic=False, variant=f"{c.variant}; deterministic off".replace(
                "as configured; ", "")))
        if c.photo is None:
            for mode in ("default", "reduce-overhead"):
                extra.append(replace(c, compile=mode, variant=f"torch.compile mode={mode}"))
        if exp == "colored_mnist":  # every row's 35 runs (5 seeds x 7 sigma2) as one batched model: with these the
            # projection gives the whole table's time batched (the adversarial rows cost 1.5-2 baseline steps)
            runs = len(cfg["colored_mnist"]["seeds"]) * len(cfg["colored_mnist"]["sigma2"])
            extra.extend(replace(x, batch_runs=runs, channels_last=False, variant=f"{runs} runs batched (torch.func)")
                         for x in out if x.experiment == "colored_mnist" and batchable(methods.get(x.method)))
        if exp == "fairface":  # a row's runs of every share (130 at full scale) batched: the baseline, whose step
            # costs about what the other weighting rows' do, and l2rw, the sweep's costliest row
            rw = cfg["reweighting"]
            runs = len(rw["seeds"]) * len(rw["fairface"]["shares"])
            for row in ("baseline", "l2rw"):
                case = next((x for x in out if (x.experiment, x.method) == ("fairface", row)), None)
                if case is not None:
                    extra.append(replace(case, batch_runs=runs, channels_last=False,
                                         variant=f"{runs} runs batched (torch.func)"))
    return out + extra


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


def setup_case(case: Case, device: torch.device):
    """(method, batch): the case's method built, attached and compiled as its training job does it, on ``device``,
    and a function giving its next training batch (the device image pipeline's view for the photo datasets)."""
    from debias import methods
    from debias.data.image_pipeline import Pipeline
    from debias.determinism import configure
    from debias.engine import make_batch

    configure(case.deterministic)
    torch.manual_seed(0)
    # one synthetic dataset per experiment, shared by its cases; keyed by the data function itself, which the key
    # keeps alive (its id() alone could be reused by another experiment's function once this one is freed)
    key = (case.data, str(device))
    if key not in _DATA:
        _DATA.clear()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        _DATA[key] = case.data(device)
    splits = _DATA[key]
    train = splits["train"]
    cls = methods.get(case.method)

    def build():
        with device:  # made where they train (on ``meta``, .to() would make parameters the optimisers do not hold)
            return cls(case.make_backbone(), case.hp).to(device)

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
    pipe = Pipeline(crop=case.photo["crop"], channels_last=case.channels_last) if case.photo else None
    stream = index_stream(method, n, case.batch_size, device)

    def batch():
        if stacked is not None:
            return stacked.batch(torch.stack([next(stream) for _ in range(case.batch_runs)]))
        idx = next(stream)
        if pipe is None:
            return make_batch(train, idx, case.channels_last)
        b = {k: v[idx] for k, v in train.items() if k != "x"}
        b["x"] = pipe.train_view(train["x"][idx]) if case.photo["view"] == "train" else pipe.eval_view(train["x"][idx])
        return b

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
