"""Where every training run of the pipeline writes: its outputs and its resumable state, from the config alone.

The workflow's rules (``workflow/rules/*_common.smk``) build their paths with these functions, and
``python -m debias.status`` uses the same ones to find out how far a run has got, so the two cannot disagree.
Only the standard library and ``debias.config``'s plain helpers: no torch, no snakemake (the workflow imports this
module while it builds the DAG, in the driver environment too).

Layout (``results`` is the config key ``results``):

- ``<results>/runs/<experiment>/<key=value or name>/.../seed=<seed>/{metrics.json,model.pt,logits.pt}``
- ``<results>/state/<experiment>/.../seed=<seed>.pt``: the resumable state of a run while it trains (removed once
  its ``metrics.json`` is written)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from debias.config import method_entry

# -- colored MNIST (paper 003) ---------------------------------------------------------------------------------


def sigma2_tags(section: dict[str, Any]) -> list[str]:
    """The σ² values of ``colored_mnist.sigma2`` as they appear in paths (three decimals)."""
    return [f"{s:.3f}" for s in section["sigma2"]]


def cm_run(results: str, sigma2: str, method: str, seed, name: str) -> str:
    return f"{results}/runs/colored_mnist/sigma2={sigma2}/{method}/seed={seed}/{name}"


def cm_state(results: str, sigma2: str, method: str, seed) -> str:
    return f"{results}/state/colored_mnist/sigma2={sigma2}/{method}/seed={seed}.pt"


# -- example reweighting (paper 001): FairFace and the L2RW MNIST grid ----------------------------------------

RW_EXPS = ("fairface", "l2rw_mnist")
BALANCED_SHARE = "0.500"  # the balanced reference set's share (protocol D4)
RW_TABLES = {"fairface": "fairface_reweighting", "l2rw_mnist": "l2rw_mnist"}  # experiment -> its table's name


def share_tag(share: float) -> str:
    """A majority share as it appears in paths (``0.9`` -> ``0.900``)."""
    return f"{share:.3f}"


def rw_shares(section: dict[str, Any], exp: str) -> list[str]:
    """The majority shares of ``reweighting.<exp>.shares`` as they appear in paths."""
    return [share_tag(s) for s in section[exp]["shares"]]


def mx_rw_shares(config: dict[str, Any], exp: str) -> list[str]:
    """The shares of ``exp``'s splits the matrix's datasets read (their ``share`` key), as they appear in paths."""
    datasets = (config.get("matrix") or {}).get("datasets", {})
    return [share_tag(e["share"]) for name, e in datasets.items() if e.get("task", name) == exp and "share" in e]


def rw_balanced(section: dict[str, Any], exp: str) -> list[str]:
    """The methods also trained on a balanced training set (share 0.5)."""
    return list(section[exp].get("balanced_reference", []))


def rw_run(results: str, exp: str, share: str, method: str, seed, name: str) -> str:
    return f"{results}/runs/{exp}/share={share}/{method}/seed={seed}/{name}"


def rw_state(results: str, exp: str, share: str, method: str, seed) -> str:
    return f"{results}/state/{exp}/share={share}/{method}/seed={seed}.pt"


def rw_keys(section: dict[str, Any], exp: str) -> list[tuple[str, str, Any]]:
    """(share, method, seed) of every run of the experiment's table: shares x methods x seeds, then the balanced
    share's methods x seeds."""
    return ([(share, m, s) for share in rw_shares(section, exp) for m in section["methods"] for s in section["seeds"]]
            + [(BALANCED_SHARE, m, s) for m in rw_balanced(section, exp) for s in section["seeds"]])


# -- Waterbirds (paper 002) ------------------------------------------------------------------------------------

WB_EPS_PREFIX = "eps_pct="  # the fisher_flat sweep's path segment; rows without a sweep use "default"


def wb_class(section: dict[str, Any], row: str) -> str:
    return method_entry(row, section["hparams"][row])[0]


def wb_percentiles(section: dict[str, Any], row: str) -> dict[str, float | None]:
    """A row's path segments and the ε percentile each stands for: one per percentile of `epsilon_percentiles`
    for a fisher_flat row without an absolute epsilon, else just "default" (None)."""
    hp = section["hparams"][row]
    if wb_class(section, row) == "fisher_flat" and hp.get("epsilon") is None and section.get("epsilon_percentiles"):
        return {f"{WB_EPS_PREFIX}{p:g}": p for p in section["epsilon_percentiles"]}
    return {"default": None}


def wb_variants(section: dict[str, Any], row: str) -> list[str]:
    """A row's path segments (``wb_percentiles``)."""
    return list(wb_percentiles(section, row))


def wb_keys(section: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(row, variant) of every training run of the table, in table order."""
    if section is None:
        return []
    return [(row, v) for row in section["methods"] for v in wb_variants(section, row)]


def wb_run(results: str, row: str, variant: str, seed, name: str) -> str:
    return f"{results}/runs/waterbirds/{row}/{variant}/seed={seed}/{name}"


def wb_state(results: str, row: str, variant: str, seed) -> str:
    return f"{results}/state/waterbirds/{row}/{variant}/seed={seed}.pt"


# -- COCO gender leakage (paper 000) ---------------------------------------------------------------------------


def coco_lr(lr) -> str:
    """A learning rate as it appears in paths and run ids, e.g. 1e-03."""
    return f"{float(lr):.0e}"


def coco_pairing(section: dict[str, Any], aug: str, pairing: str) -> str:
    """The pairing segment of an augmentation's runs: "none" for the no-mix class (it has no partner)."""
    cls = method_entry(aug, section["hparams"][aug])[0]
    return "none" if cls == "nomix" else pairing


def coco_cells(section: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    """Every training cell (split, aug, pairing, lr): Table 2 (lr x aug on table2_split, random pairs) and Table 3
    (split x aug x pairing at table3_lr; the no-mix model has no partner: pairing 'none')."""
    if section is None:
        return []
    cells = set()
    for lr in section["lrs"]:
        for aug in section["augmentations"]:
            cells.add((section["table2_split"], aug, coco_pairing(section, aug, "random"), coco_lr(lr)))
    for split in section["splits"]:
        for aug in section["augmentations"]:
            for pairing in section["pairings"]:
                cells.add((split, aug, coco_pairing(section, aug, pairing), coco_lr(section["table3_lr"])))
    return sorted(cells)


def coco_table3_keys(section: dict[str, Any]) -> list[tuple[str, str, str, Any]]:
    """(split, aug, pairing, seed) of every model-leakage cell of Table 3."""
    keys = set()
    for split in section["splits"]:
        for aug in section["augmentations"]:
            for pairing in section["pairings"]:
                for s in section["seeds"]:
                    keys.add((split, aug, coco_pairing(section, aug, pairing), s))
    return sorted(keys)


def coco_run(results: str, split: str, aug: str, pairing: str, lr: str, seed, name: str) -> str:
    return f"{results}/runs/coco/split={split}/{aug}/pairing={pairing}/lr={lr}/seed={seed}/{name}"


def coco_state(results: str, split: str, aug: str, pairing: str, lr: str, seed) -> str:
    return f"{results}/state/coco/split={split}/{aug}/pairing={pairing}/lr={lr}/seed={seed}.pt"


def coco_dataset_leakage(results: str, split: str) -> str:
    return f"{results}/leakage/coco/dataset/split={split}.json"


def coco_model_leakage(results: str, split: str, aug: str, pairing: str, lr: str, seed) -> str:
    return f"{results}/leakage/coco/model/split={split}/{aug}/pairing={pairing}/lr={lr}/seed={seed}.json"


# -- every training run of a config ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One training run: the table it feeds, the engine's name for it (``runner.run_id``: what a resumable state's
    ``run_ids`` list), its row (the config's hparams entry), its metrics.json and its resumable state file."""
    table: str
    run_id: str
    section: str  # the config path of its hparams entry, e.g. "reweighting.fairface"
    row: str
    metrics: str
    state: str


# -- the method x dataset matrix ---------------------------------------------------------------------------------
def mx_datasets(config: dict[str, Any]) -> list[str]:
    """The matrix's columns this config can build: a dataset whose ``from`` section the config lacks (a config
    without COCO, say) is left out (``mx_left_out``)."""
    return [d for d, e in config["matrix"]["datasets"].items() if "from" not in e or config.get(e["from"]) is not None]


def mx_left_out(config: dict[str, Any]) -> list[str]:
    """One sentence per matrix dataset left out of this config's matrix, naming its key and why."""
    section = config.get("matrix") or {"datasets": {}}
    return [f"config key matrix.datasets.{d}: left out of the matrix, the config has no {e['from']!r} section (its "
            f"model and data come from there)" for d, e in section["datasets"].items()
            if d not in mx_datasets(config)]


def mx_run(results: str, dataset: str, method: str, seed) -> str:
    return f"{results}/runs/matrix/{dataset}/{method}/seed={seed}/metrics.json"


def mx_state(results: str, dataset: str, method: str, seed) -> str:
    return f"{results}/state/matrix/{dataset}/{method}/seed={seed}.pt"


def training_runs(config: dict[str, Any]) -> dict[str, list[Run]]:
    """Table (experiment) -> every training run that its rule `all` needs, in table order."""
    results = config["results"]
    out: dict[str, list[Run]] = {}
    cm = config["colored_mnist"]
    out["colored_mnist"] = [
        Run("colored_mnist", f"colored_mnist/sigma2={v}/{m}/seed={s}", "colored_mnist", m,
            cm_run(results, v, m, s, "metrics.json"), cm_state(results, v, m, s))
        for v in sigma2_tags(cm) for m in cm["methods"] for s in cm["seeds"]]
    rw = config["reweighting"]
    for exp in RW_EXPS:
        out[RW_TABLES[exp]] = [
            Run(RW_TABLES[exp], f"{exp}/share={share}/{m}/seed={s}", f"reweighting.{exp}", m,
                rw_run(results, exp, share, m, s, "metrics.json"), rw_state(results, exp, share, m, s))
            for share, m, s in rw_keys(rw, exp)]
    wb = config.get("waterbirds")
    if wb is not None:
        out["waterbirds"] = [
            Run("waterbirds", "/".join(["waterbirds", *([] if v == "default" else
                                                        [f"epsilon_percentile={wb_percentiles(wb, row)[v]:g}"]),
                                        row, f"seed={s}"]),
                "waterbirds", row, wb_run(results, row, v, s, "metrics.json"), wb_state(results, row, v, s))
            for row, v in wb_keys(wb) for s in wb["seeds"]]
    coco = config.get("coco")
    if coco is not None:
        out["coco"] = [
            Run("coco", f"coco/split={sp}/{aug}/pairing={pa}/lr={lr}/seed={s}", "coco", aug,
                coco_run(results, sp, aug, pa, lr, s, "metrics.json"), coco_state(results, sp, aug, pa, lr, s))
            for sp, aug, pa, lr in coco_cells(coco) for s in coco["seeds"]]
    mx = config.get("matrix")
    if mx is not None:
        out["method_matrix"] = [
            Run("method_matrix", f"matrix/{d}/{m}/seed={s}", "matrix", m, mx_run(results, d, m, s),
                mx_state(results, d, m, s))
            for m in mx["methods"] for d in mx_datasets(config) for s in mx["seeds"]]
    return out


def coco_leakage_outputs(config: dict[str, Any]) -> list[str]:
    """Every leakage result of COCO's Table 3: one dataset leakage per split, one model leakage per model."""
    coco, results = config.get("coco"), config["results"]
    if coco is None:
        return []
    lr = coco_lr(coco["table3_lr"])
    return ([coco_dataset_leakage(results, s) for s in coco["splits"]]
            + [coco_model_leakage(results, sp, aug, pa, lr, s) for sp, aug, pa, s in coco_table3_keys(coco)])


def table_files(config: dict[str, Any]) -> dict[str, list[str]]:
    """Table (experiment) -> the tidy CSVs its aggregation rule writes (claims: the claims table)."""
    tables = f"{config['results']}/tables"
    out = {"colored_mnist": [f"{tables}/colored_mnist.csv"],
           "fairface_reweighting": [f"{tables}/fairface_reweighting.csv"],
           "l2rw_mnist": [f"{tables}/l2rw_mnist.csv"]}
    if config.get("waterbirds") is not None:
        out["waterbirds"] = [f"{tables}/waterbirds.csv"]
    if config.get("coco") is not None:
        out["coco"] = [f"{tables}/coco_{t}.csv" for t in ("splits", "map", "leakage")]
    if config.get("matrix") is not None:
        out["method_matrix"] = [f"{tables}/method_matrix.csv"]
    out["claims"] = [f"{tables}/claims.csv"]
    return out
