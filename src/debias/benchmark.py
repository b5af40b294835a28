"""Time one training step of every registered method on the same model and batch.

    python -m debias.benchmark [--device cpu|cuda] [--threads N] [--repeats 30] [--out step_cost_manual.csv]

By hand it writes ``results/benchmarks/step_cost_manual.csv`` (``--out`` to change): never the pipeline's
``<results>/benchmarks/step_cost.csv``, the output of the rule ``step_cost``, which Snakemake would then take for
up to date although it did not make it.

For each benchmark model, every method that can run on it (a method needing a bias head is skipped on a
model without one) takes warm-up steps, then ``repeats`` timed steps; the median is reported with its ratio to
``baseline`` on the same model. On CUDA each step is synchronised before the clock stops.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from debias import methods
from debias.io import write_text

RULE_OUT = "benchmarks/step_cost.csv"  # the rule step_cost writes <results>/benchmarks/step_cost.csv
MANUAL_OUT = "results/benchmarks/step_cost_manual.csv"  # a hand run's default

SGD = dict(lr=1e-3, momentum=0.9, weight_decay=0.0, steps=1, alpha=0.01, entropy_weight=0.01, grl_factor=0.1,
           ramp_variable="epoch", ties="reference", meta_lr=1.0,
           loss="ce", train_layers="all", label_weights="area", autocast=True)  # nomix, mixup, cutmix (Adam)


# settings of a method worth timing on their own: (method, key, value, models it is timed on; None = every model)
VARIANTS = [("l2rw", "meta_gradient", "forward", None),
            ("fisher_flat", "trace", "full", ("mini_resnet",))]  # the paper's literal trace, on the ResNet only
SGD.update(robust_step_size=0.01, generalization_adjustment=0.0, reweight_groups=False,  # groupdro
           trace="last_layer", multipliers="per_sample", dual_step_size=0.01, epsilon_percentile=50,  # fisher_flat
           warmup_epochs=0, epsilon=1e-3, trace_chunk=16)


# name -> (task, its model entry, batch size, the methods timed on it: None = every method)
BENCHMARK_MODELS = {
    "l2rw_lenet": ("fairface", {"width": 16}, 100, None),  # the official L2RW LeNet
    "lnl_convnet": ("colored_mnist", {"width": 32, "n_bins": 8, "mean": [0.5] * 3, "std": [0.25] * 3}, 128, None),
    # the mini stand-in for ResNet-50 (widths 8-16-32, 32 px images), with the Waterbirds methods
    "mini_resnet": ("waterbirds", {"arch": "small_resnet", "widths": [8, 16, 32]}, 64,
                    ("baseline", "erm", "groupdro", "fisher_flat")),
}


def benchmark_models():
    """name -> (backbone factory, batch factory, the methods timed on it: None = every method), from each model's
    task: its backbone, and a batch of its synthetic training split as training makes it (``make_batch``)."""
    from debias import tasks
    from debias.batching import make_batch

    def factories(task, model, n):
        shapes = {"train": task.synthetic(2, model)}  # what the backbone reads of the data (channels, outputs)

        def batch(device, size=n):
            split = {k: v.to(device) for k, v in task.synthetic(size, model).items()}
            return make_batch(split, torch.arange(size, device=device), view=task.train_view({"train": {}}))

        return lambda: task.backbone(model, shapes), batch

    return {name: (*factories(tasks.get(task), model, n), only)
            for name, (task, model, n, only) in BENCHMARK_MODELS.items()}


def time_steps(method, batch, device, warmup: int, repeats: int) -> float:
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        method.update(batch)
    times = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        method.update(batch)
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def run(device: torch.device, warmup: int, repeats: int) -> list[dict]:
    from debias.determinism import configure

    configure(True)  # the kernels training uses with train.deterministic: true (both configs, every experiment)
    rows = []
    for model_name, (make_backbone, make_batch, only) in benchmark_models().items():
        torch.manual_seed(0)  # the same synthetic batch at every run
        batch = make_batch(device)
        val = make_batch(device, 10)
        splits = {"train": batch, "val": val}
        base_ms = None
        variants = [(m, m, {}) for m in ["baseline"] + [m for m in methods.names() if m != "baseline"]
                    if only is None or m in only]
        variants += [(f"{m}[{k}={v}]", m, {k: v}) for m, k, v, models in VARIANTS
                     if (models is None or model_name in models) and (only is None or m in only)]
        for name, registered, extra in variants:
            torch.manual_seed(0)
            cls = methods.get(registered)
            try:
                method = cls(make_backbone(), {**SGD, **extra}).to(device)
                missing = [k for k in cls.needs if k not in batch]
                if missing:
                    raise KeyError(f"needs {missing}")
                method.attach(splits)
            except (ValueError, KeyError) as exc:  # the method needs what this model or batch lacks
                print(f"{model_name}: {name} skipped: {skip_reason(exc)}", file=sys.stderr)
                continue
            method.on_epoch_start(0, 1, 1)
            ms = time_steps(method, batch, device, warmup, repeats)  # a failure here is a bug: it is raised
            if name == "baseline":  # timed again after the others, the lower figure kept: the first timing
                base_ms = ms        # of a process also pays for the allocator's and the kernels' warm-up
            rows.append({"method": name, "model": model_name, "device": device_name(device),
                         "batch_size": int(batch["y"].shape[0]), "ms_per_step": ms, "ratio_to_baseline": ms / base_ms})
        torch.manual_seed(0)
        again = methods.get("baseline")(make_backbone(), SGD).to(device)
        base_ms = min(base_ms, time_steps(again, batch, device, warmup, repeats))
        for r in rows:
            if r["model"] == model_name:
                r["ms_per_step"] = base_ms if r["method"] == "baseline" else r["ms_per_step"]
                r["ratio_to_baseline"] = r["ms_per_step"] / base_ms
                print(f"{model_name:12s} {r['method']:30s} {r['ms_per_step']:8.2f} ms/step  "
                      f"{r['ratio_to_baseline']:5.2f}x baseline", file=sys.stderr)
    return rows


def skip_reason(exc: Exception) -> str:
    """One line saying why a method cannot run on a benchmark model."""
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return text.splitlines()[0]


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--out", default=MANUAL_OUT, help=f"CSV to write (default {MANUAL_OUT}); never a pipeline "
                   f"output such as <results>/{RULE_OUT}")
    args = p.parse_args(argv)
    if Path(args.out).parts[-2:] == Path(RULE_OUT).parts:
        p.error(f"--out {args.out}: that is the pipeline's output (rule step_cost), which Snakemake would then take "
                f"for up to date; write elsewhere (default {MANUAL_OUT}), or let Snakemake make it: "
                "`snakemake step_cost --cores 1`")
    if args.threads:
        torch.set_num_threads(args.threads)
    write_csv(run(torch.device(args.device), args.warmup, args.repeats), args.out)


def write_csv(rows: list[dict], out) -> None:
    header = ["method", "model", "device", "batch_size", "ms_per_step", "ratio_to_baseline"]
    lines = [",".join(header)] + [
        ",".join(f"{r[h]:.4f}" if isinstance(r[h], float) else str(r[h]) for h in header) for r in rows
    ]
    write_text(out, "\n".join(lines) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
