"""How the mini-scale schedules of config/mini.yaml were chosen: on validation splits, never on test.

    python tools/tune_mini.py l2rw_mnist   [--lrs 1e-3 3e-3 1e-2 3e-2] [--steps 300 600]
    python tools/tune_mini.py colored_mnist [--lrs 0.01 0.02 0.05] [--epochs 5 8]
    python tools/tune_mini.py coco [--lrs 3e-3 1e-2] [--steps 600] [--epochs 40] [--splits none gamma1]

Both read the embedded digits (config/mini.yaml's MNIST) and hold a validation set out of the *training*
digits; the test digits are not read at all.

- ``l2rw_mnist``: 50 + 50 training digits (4s and 9s) form a balanced selection set; the imbalanced training
  sets (and l2rw's 5 + 5 clean meta-validation images) come from the remaining 350 + 350, with a 340-image
  budget instead of 390 so that a 0.99 share still fits. Every (lr, steps) is run for every method and share;
  the selection error of each is printed. The schedule is chosen for the *baseline* (lowest mean selection
  error over the shares) and then applied to every method alike.
- ``colored_mnist``: 800 of the 4,000 training digits become a validation set coloured like the test set
  (colour independent of the label); the rest is coloured with the training recipe at the given sigma2.
  Baseline, gray and the LNL rows are trained with each schedule; LNL and its adaptive variant start from the
  baseline of the same schedule and seed, as in the pipeline.

- ``coco``: one classifier per (augmentation, lr, length, split) on the prepared mini COCO
  (``results/mini/prepared/coco``, made by ``snakemake --configfile config/mini.yaml coco``); COCO has a
  validation split of its own, and only it is printed: val mAP and macro-F1 of the epoch val macro-F1 selects (as
  the pipeline selects), the best val mAP of any epoch, and the first epoch whose val mAP reaches 60 %.
  ``--widths`` and ``--unweighted-bce`` (plain BCE instead of Wang's class weights) are diagnostics.

The printed tables are the evidence quoted in the README ("Deviations", mini scale).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from debias import methods  # noqa: E402
from debias.config import method_entry  # noqa: E402
from debias.data import colored_mnist as cm  # noqa: E402
from debias.data.imbalance import imbalanced_split, official_seed  # noqa: E402
from debias.data.mini.mnist import load_embedded_digits, stratified_split  # noqa: E402
from debias.engine import RunSpec, evaluate, fit  # noqa: E402
from debias.models import colored_mnist_backbone, l2rw_lenet_backbone  # noqa: E402

MINI = yaml.safe_load((ROOT / "config" / "mini.yaml").read_text())


def train_digits() -> tuple[np.ndarray, np.ndarray]:
    """The embedded training digits exactly as the mini pipeline writes them (the test part is dropped)."""
    x, y = load_embedded_digits()
    tr, _ = stratified_split(y, MINI["mnist"]["test_per_class"], seed=0)
    return x[tr], y[tr]


def run(row_hp: dict, cls_name: str, make_backbone, splits, seed: int, channels_last: bool, init=None):
    torch.manual_seed(seed)  # before the network is built: its initial weights come from this seed
    method = methods.get(cls_name)(make_backbone(), row_hp)
    if channels_last:
        method.modules.to(memory_format=torch.channels_last)
    if init is not None:
        method.init_from(init)
    with tempfile.TemporaryDirectory() as tmp:
        spec = RunSpec(run_id=f"tune/{cls_name}/seed={seed}", seed=seed, epochs=row_hp.get("epochs"),
                       max_steps=row_hp.get("steps"), batch_size=row_hp.get("batch_size", 64),
                       state_path=Path(tmp) / "state.pt", checkpoint_every_s=1e9, progress=False,
                       channels_last=channels_last)
        fit(method, splits, spec)
    return method


def tune_l2rw_mnist(lrs, steps_list, seeds, shares, rows):
    section = MINI["reweighting"]["l2rw_mnist"]
    x, y = train_digits()
    keep = (y == 4) | (y == 9)
    x, y = torch.from_numpy(x[keep]).unsqueeze(1), torch.from_numpy((y[keep] == 9).astype(np.int64))
    rng = np.random.RandomState(12345)
    sel = np.concatenate([rng.permutation(np.flatnonzero(y.numpy() == c))[:50] for c in (0, 1)])
    rest = np.setdiff1d(np.arange(len(y)), sel)
    selection = {"x": x[sel], "y": y[sel], "group": y[sel]}
    train_cfg = MINI["reweighting"]["train"]
    print(f"selection set: {len(sel)} digits (50 + 50); training pool: {len(rest)}")
    print("lr,steps,method,share,selection_error_mean,selection_error_std")
    for lr, steps in itertools.product(lrs, steps_list):
        for row in rows:
            cls_name, hp = method_entry(row, section["hparams"][row])
            hp = {**hp, "lr": lr, "steps": steps}
            for share in shares:
                errs = []
                for seed in seeds:
                    idx = imbalanced_split(y[rest].numpy(), y[rest].numpy(), share, 340, section["n_val_per_class"],
                                           1, False, official_seed(seed))
                    splits = {k: {"x": x[rest][idx[k]], "y": y[rest][idx[k]], "group": y[rest][idx[k]]}
                              for k in ("train", "val")}
                    method = run({**hp, "batch_size": hp.get("batch_size", train_cfg["batch_size"])}, cls_name,
                                 lambda: l2rw_lenet_backbone(1, 1, MINI["reweighting"]["model"]["width"], 28), splits, seed,
                                 train_cfg["channels_last"])
                    m = evaluate(method, selection, 1000, {0: "digit4", 1: "digit9"}, train_cfg["channels_last"])
                    errs.append(1.0 - m["accuracy"])
                print(f"{lr:g},{steps},{row},{share},{np.mean(errs):.3f},{np.std(errs, ddof=1) if len(errs) > 1 else 0:.3f}",
                      flush=True)


def tune_colored_mnist(lrs, epochs_list, lnl_epochs_list, seeds, sigma2, lnl_overrides=None, rows=None,
                       lnl_rows=("lnl", "lnl_adaptive")):
    section = MINI["colored_mnist"]
    x, y = train_digits()
    tr, va = stratified_split(y, 80, seed=1)  # 80 per class = 800 validation digits
    mnist = {"train": (torch.from_numpy(x[tr]), torch.from_numpy(y[tr]).long()),
             "test": (torch.from_numpy(x[va]), torch.from_numpy(y[va]).long())}
    data = cm.generate(mnist, section["colors"], sigma2, section["data_seed"])
    splits = cm.training_splits(data, torch.device("cpu"))
    val = splits.pop("test")
    m = section["model"]
    cl = section["train"]["channels_last"]

    def backbone():
        return colored_mnist_backbone(m["width"], 10, m["n_bins"], m["mean"], m["std"])

    print(f"sigma2 {sigma2}: {len(tr)} training digits, {len(va)} validation digits (label-independent colours)")
    print("lr,epochs,lnl_epochs,method,val_acc_mean,val_acc_std,seconds")
    for lr, epochs in itertools.product(lrs, epochs_list):
        base_models, results = {}, {}
        for row in rows or ("baseline", "gray", "blindeye"):
            cls_name, hp = method_entry(row, section["hparams"][row])
            hp = {**hp, "lr": lr, "epochs": epochs, "batch_size": section["train"]["batch_size"]}
            accs, t0 = [], time.monotonic()
            for seed in seeds:
                method = run(hp, cls_name, backbone, splits, seed, cl)
                if row == "baseline":
                    base_models[seed] = method.model_state()
                accs.append(evaluate(method, val, 1000, {}, cl)["accuracy"])
            print(f"{lr:g},{epochs},-,{row},{np.mean(accs):.3f},{np.std(accs, ddof=1):.3f},{time.monotonic() - t0:.0f}",
                  flush=True)
        for lnl_epochs in [e for e in lnl_epochs_list if e > 0]:  # 0: no LNL run
            for row in lnl_rows:
                cls_name, hp = method_entry(row, section["hparams"][row])
                hp = {**hp, "lr": lr, "epochs": lnl_epochs, "batch_size": section["train"]["batch_size"],
                      **(lnl_overrides or {})}
                accs, t0 = [], time.monotonic()
                for seed in seeds:
                    method = run(hp, cls_name, backbone, splits, seed, cl, init=base_models[seed])
                    accs.append(evaluate(method, val, 1000, {}, cl)["accuracy"])
                print(f"{lr:g},{epochs},{lnl_epochs},{row},{np.mean(accs):.3f},{np.std(accs, ddof=1):.3f},"
                      f"{time.monotonic() - t0:.0f}", flush=True)
        del results


def tune_coco(lrs, lengths, splits, augmentations, seeds, results, widths=None, unweighted=False):
    from debias.experiments import coco_train
    from debias.methods import mixing
    from debias.io import read_json

    prepared = Path(results) / "prepared" / "coco"
    if not (prepared / "labels.pt").is_file():
        raise SystemExit(f"{prepared}/labels.pt not found: run `snakemake --configfile config/mini.yaml coco` first")
    co = MINI["coco"]
    model = {**co["model"], **({"widths": widths} if widths else {})}
    if unweighted:  # diagnostic: every class weight 1 instead of Wang's #neg / #pos
        mixing.reference_class_weights = lambda y: torch.ones(y.shape[1], device=y.device)
    print("aug     lr       length      split   seed  val_mAP_selected  val_F1_selected  val_mAP_best  "
          "first_epoch_60  s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for aug, lr, (key, n), split, seed in itertools.product(augmentations, lrs, lengths, splits, seeds):
            hp = {k: v for k, v in co["hparams"][aug].items() if k not in ("epochs", "steps")}
            out = Path(tmp) / f"{aug}_{lr}_{key}{n}_{split}_{seed}"
            t0 = time.monotonic()
            coco_train.train(hparams={**hp, key: n}, model=model, train_cfg=co["train"], image=co["image"],
                             split=split, aug=aug, pairing="none" if aug == "nomix" else "random", lr=lr,
                             seeds=[seed], data=str(prepared / "data.pt"), labels=str(prepared / "labels.pt"),
                             metrics=[str(out / "metrics.json")], logits=[str(out / "logits.pt")],
                             states=[str(out / "state.pt")], device="cpu", progress=False)
            rec = read_json(out / "metrics.json")
            val = [h["val"]["mAP"] for h in rec["history"]]
            first = next((i + 1 for i, v in enumerate(val) if v >= 0.6), None)
            print(f"{aug:7} {lr:<8g} {key} {n:<5} {split:7} {seed:4}  {rec['metrics']['val']['mAP']:16.3f}  "
                  f"{rec['metrics']['val']['macro_f1']:15.4f}  {max(val):12.3f}  {str(first):>14}  "
                  f"{time.monotonic() - t0:.0f}", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="experiment", required=True)
    a = sub.add_parser("l2rw_mnist")
    a.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 3e-3, 1e-2, 3e-2])
    a.add_argument("--steps", type=int, nargs="+", default=[300])
    a.add_argument("--shares", type=float, nargs="+", default=[0.9, 0.95, 0.98, 0.99])
    a.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    a.add_argument("--methods", nargs="+", default=MINI["reweighting"]["methods"])
    b = sub.add_parser("colored_mnist")
    b.add_argument("--lrs", type=float, nargs="+", default=[0.02])
    b.add_argument("--epochs", type=int, nargs="+", default=[5])
    b.add_argument("--lnl-epochs", type=int, nargs="+", default=[3])
    b.add_argument("--sigma2", type=float, default=0.02)
    b.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    b.add_argument("--rows", nargs="+", default=["baseline", "gray", "blindeye"],
                   help="rows trained from scratch (baseline is always needed: LNL starts from it)")
    b.add_argument("--lnl-rows", nargs="+", default=["lnl", "lnl_adaptive"])
    b.add_argument("--grl-factor", type=float, help="LNL's reversal factor mu (exploration only)")
    b.add_argument("--entropy-weight", type=float, help="LNL's entropy weight lambda (exploration only)")
    c = sub.add_parser("coco")
    c.add_argument("--lrs", type=float, nargs="+", default=MINI["coco"]["lrs"])
    c.add_argument("--steps", type=int, nargs="*", default=[600], help="lengths in steps (every split alike)")
    c.add_argument("--epochs", type=int, nargs="*", default=[], help="lengths in epochs")
    c.add_argument("--splits", nargs="+", default=["none"])
    c.add_argument("--augmentations", nargs="+", default=MINI["coco"]["augmentations"])
    c.add_argument("--seeds", type=int, nargs="+", default=MINI["coco"]["seeds"])
    c.add_argument("--results", default=str(ROOT / "results" / "mini"), help="the mini results tree")
    c.add_argument("--widths", type=int, nargs=3, help="the small ResNet's channels (diagnostic)")
    c.add_argument("--unweighted-bce", action="store_true", help="plain BCE (diagnostic)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.experiment == "l2rw_mnist":
        tune_l2rw_mnist(args.lrs, args.steps, args.seeds, args.shares, args.methods)
    elif args.experiment == "coco":
        lengths = [("steps", n) for n in args.steps] + [("epochs", n) for n in args.epochs]
        tune_coco(args.lrs, lengths, args.splits, args.augmentations, args.seeds, args.results, args.widths,
                  args.unweighted_bce)
    else:
        over = {k: v for k, v in (("grl_factor", args.grl_factor), ("entropy_weight", args.entropy_weight))
                if v is not None}
        tune_colored_mnist(args.lrs, args.epochs, args.lnl_epochs, args.seeds, args.sigma2, over, args.rows, args.lnl_rows)


if __name__ == "__main__":
    main()
