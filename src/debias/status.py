"""Where a run of the pipeline stands, per table: which training runs are done, running or not started.

    python -m debias.status                                 (config/config.yaml)
    python -m debias.status --configfile config/mini.yaml   (any config, as given to snakemake)
    python -m debias.status --configfile config/mini.yaml --runs    (also every unfinished run by name)
    python -m debias.status --configfile config/mini.yaml my_overlay.yaml   (several, merged as snakemake does)

Run it from the repository root, like snakemake (the config's paths are relative to it). It reads the config and
the results folder only: it writes nothing, needs no snakemake and imports torch only to read a resumable state
that exists. A run is

- done: its ``metrics.json`` exists (the runner writes it last);
- running: its resumable state exists (``<results>/state/...``; ``debias.engine.train_runs`` saves it as it trains
  and the runner removes it once ``metrics.json`` is written), shown with the epoch the state has reached. A job
  that was killed leaves its state too: the next snakemake run resumes from it, so "running" means "started and
  part way", and the state's age says whether it still moves;
- not started: neither.

The expected runs come from the config through ``debias.paths``, the functions the workflow's rules build their
paths with.
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # writes nothing, not even a bytecode cache  # noqa: E402

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import yaml  # noqa: E402

from debias.config import ConfigError, method_entry, schema_errors  # noqa: E402
from debias.errors import InputError  # noqa: E402
from debias.paths import Run, coco_leakage_outputs, table_files, training_runs  # noqa: E402

DEFAULT_CONFIG = "config/config.yaml"
SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


@dataclass
class Progress:
    """A run's resumable state as read: the epoch it has reached, of how many, and when it was saved."""
    epoch: int | None
    epochs: int | None
    saved_s_ago: float
    state: str

    def text(self) -> str:
        if self.epoch is None:
            return "state unreadable"
        return f"epoch {self.epoch}" + (f" of {self.epochs}" if self.epochs else "")


@dataclass
class TableStatus:
    name: str
    runs: list[Run]
    done: list[Run] = field(default_factory=list)
    running: dict[str, Progress] = field(default_factory=dict)  # run_id -> progress
    not_started: list[Run] = field(default_factory=list)
    tables: dict[str, bool] = field(default_factory=dict)  # table file -> exists
    leakage: tuple[int, int] | None = None  # COCO: (done, expected) leakage results


def load_config(*paths: str | Path) -> dict[str, Any]:
    """The config as snakemake reads it, checked against the schema: ``--configfile`` replaces config/config.yaml,
    and each further file is merged into the ones before it, key by key at every depth (Snakemake's own rule, e.g.
    config/mini.yaml then an overlay of a few keys)."""
    config: dict[str, Any] = {}
    for path in map(Path, paths):
        if not path.is_file():
            raise InputError(f"config file {str(path)!r} not found (--configfile; run from the repository root, "
                             f"where {DEFAULT_CONFIG} is)")
        try:
            part = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
        if not isinstance(part, dict):
            raise ConfigError(f"{path}: expected a mapping of config keys, found {type(part).__name__}")
        merge_into(config, part)
    if SCHEMA.is_file():
        errors = schema_errors(config, SCHEMA)
        if errors:
            raise ConfigError(f"{' + '.join(map(str, paths))}: invalid config:\n  " + "\n  ".join(errors))
    return config


def merge_into(config: dict[str, Any], part: dict[str, Any]) -> None:
    """``part``'s keys over ``config``'s, mappings merged key by key, anything else replaced."""
    for key, value in part.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            merge_into(config[key], value)
        else:
            config[key] = value


def total_epochs(config: dict[str, Any], run: Run) -> int | None:
    """How many epochs ``run`` trains for (``engine.run_length``): its row's ``epochs``, or its ``steps`` over the
    training split's batches where the config gives the split's size (reweighting's ``n_train``); None if unknown."""
    section: Any = config
    for key in run.section.split("."):
        section = section.get(key, {}) if isinstance(section, dict) else {}
    try:
        hp = method_entry(run.row, section["hparams"][run.row])[1]
        if hp.get("epochs") is not None:
            return int(hp["epochs"])
        if hp.get("steps") is None or "n_train" not in section:
            return None
        train = (config.get("reweighting", {}) if run.section.startswith("reweighting.") else section).get("train", {})
        batch = hp.get("batch_size", train.get("batch_size"))
        n = section["n_train"] - (2 * section.get("n_val_per_class", 0) if section.get("val_from_budget") else 0)
        return math.ceil(int(hp["steps"]) / math.ceil(n / int(batch)))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


def read_state(path: Path) -> dict[str, Any] | None:
    """A resumable state as ``engine.train_runs`` saved it (``torch.load``; torch is imported here, only here)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception:  # noqa: BLE001 (a state being replaced, or of another format: shown as unreadable)
        return None
    return state if isinstance(state, dict) else None


def status(config: dict[str, Any], now: float | None = None) -> list[TableStatus]:
    """Every table's runs sorted into done, running and not started, and whether its table files exist."""
    now = time.time() if now is None else now
    runs = training_runs(config)
    files = table_files(config)
    out = []
    for name in dict.fromkeys([*runs, *files]):
        st = TableStatus(name, runs.get(name, []))
        by_id = {r.run_id: r for r in st.runs}
        done = {r.run_id for r in st.runs if Path(r.metrics).is_file()}
        for run in st.runs:
            if run.run_id in done or run.run_id in st.running:
                continue
            state_path = Path(run.state)
            try:
                saved = state_path.stat().st_mtime
            except OSError:
                continue
            state = read_state(state_path)
            epoch = state.get("epoch") if state else None
            progress = Progress(int(epoch) if isinstance(epoch, int) else None, total_epochs(config, run),
                                now - saved, str(state_path))
            # runs trained as one batched model (train.batch_runs) share the state of the batch's first run
            members = state.get("run_ids") if state else None
            for rid in (members if isinstance(members, list) and run.run_id in members else [run.run_id]):
                if rid in by_id and rid not in done:
                    st.running[rid] = progress
        st.done = [r for r in st.runs if r.run_id in done]
        st.not_started = [r for r in st.runs if r.run_id not in done and r.run_id not in st.running]
        st.tables = {f: Path(f).is_file() for f in files.get(name, [])}
        if name == "coco":
            leak = coco_leakage_outputs(config)
            st.leakage = (sum(Path(f).is_file() for f in leak), len(leak))
        out.append(st)
    return out


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 0):.0f} s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


def _running_text(st: TableStatus, limit: int = 3) -> str:
    states = list(dict.fromkeys(id(p) for p in st.running.values()))  # one entry per state (a batch shares one)
    progress = {id(p): p for p in st.running.values()}
    parts = [progress[i].text() for i in states[:limit]]
    more = f", +{len(states) - limit} more" if len(states) > limit else ""
    return f" ({', '.join(parts)}{more})" if parts else ""


def table_line(st: TableStatus, width: int) -> str:
    name = st.name.ljust(width)
    parts = []
    if st.runs:
        parts.append(f"{len(st.runs)} runs: {len(st.done)} done, {len(st.running)} running{_running_text(st)}, "
                     f"{len(st.not_started)} not started")
    if st.leakage is not None:
        parts.append(f"leakage: {st.leakage[0]} of {st.leakage[1]} done")
    if len(st.tables) == 1:
        parts.append(f"table: {'present' if next(iter(st.tables.values())) else 'missing'}")
    elif st.tables:
        parts.append("tables: " + ", ".join(f"{Path(f).stem} {'present' if ok else 'missing'}"
                                            for f, ok in st.tables.items()))
    return f"{name}  " + "; ".join(parts)


def report(config: dict[str, Any], config_path: str, list_runs: bool = False, now: float | None = None) -> str:
    now = time.time() if now is None else now
    tables = status(config, now)
    width = max(len("total"), *(len(t.name) for t in tables))
    results = Path(config["results"])
    there = "" if results.is_dir() else " (not there yet: nothing has run)"
    lines = [f"{config_path}: results in {results}/{there}"]
    lines += [table_line(t, width) for t in tables]
    n = sum(len(t.runs) for t in tables)
    done = sum(len(t.done) for t in tables)
    running = sum(len(t.running) for t in tables)
    tables_ok = sum(ok for t in tables for ok in t.tables.values())
    n_tables = sum(len(t.tables) for t in tables)
    lines.append(f"{'total'.ljust(width)}  {n} runs: {done} done, {running} running, {n - done - running} not started; "
                 f"tables: {tables_ok} of {n_tables} present")
    if list_runs:
        for t in tables:
            for run in t.runs:
                if run.run_id in t.running:
                    p = t.running[run.run_id]
                    lines.append(f"  running      {run.run_id}: {p.text()}, state saved {_ago(p.saved_s_ago)} "
                                 f"({p.state})")
            for run in t.not_started:
                lines.append(f"  not started  {run.run_id}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m debias.status",
                                description="Where a run stands: per table, the training runs done, running (with "
                                            "their epoch) and not started, and whether the table exists.")
    p.add_argument("--configfile", nargs="+", default=[DEFAULT_CONFIG],
                   help=f"the config file(s) the run was started with, as given to snakemake (default: {DEFAULT_CONFIG})")
    p.add_argument("--runs", action="store_true", help="also list every running and not-started run by name")
    args = p.parse_args(argv)
    try:
        config = load_config(*args.configfile)
        print(report(config, " ".join(args.configfile), list_runs=args.runs))
    except InputError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
