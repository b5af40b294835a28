"""Config validation: the JSON schema first, then what a schema cannot say (known methods, data on disk).

Every error names the config key, the value found and what was expected, and is raised before any job
starts (the Snakefile calls ``check`` while it builds the DAG). Data missing on disk is not an error of the
config: it concerns only the experiments that read it, so ``check`` prints a warning naming the key and the
files, and the rules declare the files as inputs, so that Snakemake stops before any job a run whose targets
need them and runs the others (``snakemake colored_mnist`` without COCO on disk).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml

from debias.errors import InputError


class ConfigError(InputError, ValueError):
    pass


def _key(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def schema_errors(config: dict[str, Any], schema_path: str | Path) -> list[str]:
    import jsonschema

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    messages = []
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        # a combinator's own message dumps the whole value; the schema says in words what it wants (x-message)
        text = err.schema.get("x-message") if err.validator in ("oneOf", "anyOf", "not") else None
        messages.append(f"config key {_key(err.absolute_path)}: {text or err.message}")
    return messages


def method_entry(row: str, entry: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(registered class name, hyperparameters) of a table row's ``hparams`` entry; the class defaults to the row."""
    hp = dict(entry)
    return hp.pop("method", row), hp


def check(config: dict[str, Any], schema_path: str | Path) -> list[str]:
    """Raise ConfigError listing every problem of ``config``; print (to stderr) and return a warning for each
    dataset missing on disk that the run may not fetch."""
    import sys

    from debias.data import pretrained

    errors = schema_errors(config, schema_path)
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
    errors += _check_colored_mnist(config)
    errors += _check_reweighting(config)
    errors += _check_coco(config)
    errors += _check_waterbirds(config)
    errors += _check_matrix(config)
    errors += pretrained.config_errors(config)
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
    from debias.paths import mx_left_out  # paths reads config's method entries: imported here, not at the top

    warnings = missing_data(config) + mx_left_out(config)
    if registry() is None:
        warnings.append("methods and their hyperparameters are not checked here: this environment has no torch (the "
                        "driver's, envs/snakemake.yaml); each training job checks its own row when it starts")
    for w in warnings:
        print(f"WARNING: {w}", file=sys.stderr)
    return warnings


def missing_data(config: dict[str, Any]) -> list[str]:
    """One message per dataset that is not on disk and may not be fetched (``allow_download: false``, or FairFace,
    which no script can fetch), naming its config key, the files and the targets that need it."""
    from debias.data import coco_download, layout, mnist, pretrained

    out = []
    offline = not config["allow_download"]
    cm = config["colored_mnist"]
    if cm["source"] == "authors":
        files = [layout.colored_mnist_authors_file(cm["authors_dir"], s) for s in cm["sigma2"]]
        if any(not p.is_file() for p in files):
            out.append(_missing("colored_mnist.authors_dir", [p for p in files if not p.is_file()], "colored_mnist",
                                "the authors' files cannot be downloaded by the pipeline, fetch them from the link "
                                "in their dataset README"))
    if config["mnist"]["source"] == "torchvision" and offline and mnist.missing_files(config["mnist"]["root"]):
        out.append(_missing("mnist.root", mnist.missing_files(config["mnist"]["root"]), "colored_mnist, reweighting",
                            "expected torchvision's raw IDX layout <root>/MNIST/raw/*-ubyte, or set allow_download: "
                            "true"))
    ff = config["reweighting"]["fairface"]
    csvs = [layout.fairface_label_csv(ff["root"], s) for s in ("train", "val")]
    if ff["source"] == "release" and any(not p.is_file() for p in csvs):
        out.append(f"config key reweighting.fairface.root: {', '.join(str(p) for p in csvs if not p.is_file())} not "
                   "found; the FairFace jobs will fail until the release is placed there (see docs/reweighting.md, 'FairFace "
                   "data'), the other jobs run")
    coco = config.get("coco")
    if coco and coco["source"] != "embedded" and offline and coco_download.missing(coco):
        key = "coco.wang_dir and coco.root" if coco["source"] == "wang" else "coco.root"
        out.append(_missing(key, coco_download.missing(coco), "coco",
                            "place COCO 2014 (and Wang et al.'s split files) there, or set allow_download: true"))
    wb = config.get("waterbirds")
    if wb and wb["source"] != "embedded":
        meta = layout.waterbirds_metadata_file(wb["root"], wb["source"])
        others = {s: layout.waterbirds_metadata_file(wb["root"], s) for s in layout.WATERBIRDS_LAYOUTS
                  if s != wb["source"]}
        other = next((s for s, p in others.items() if p.is_file()), None)
        if not meta.is_file() and other:
            then = (f"with allow_download: true the pipeline downloads the {wb['source']} release beside it" if not
                    offline else "the waterbirds jobs stop before they start")
            out.append(f"config key waterbirds.source: {wb['source']!r} reads {meta}, which is missing, but the "
                       f"{other} release is there ({others[other]}); set waterbirds.source: {other} to use it "
                       f"({then})")
        elif offline and not meta.is_file():
            out.append(_missing("waterbirds.root", [meta], "waterbirds",
                                f"place the {wb['source']} release folder {meta.parent.name}/ under {wb['root']!r} "
                                "(docs/waterbirds.md, 'Protocol'), or set allow_download: true"))
    mirrors = pretrained.settings(config)["mirrors"]
    for path, keys in (pretrained.missing(config) if offline else {}).items():
        where = f"; it is published at {mirrors[0]}{path.name}" if mirrors else ""
        out.append(_missing(", ".join(keys), [path], ", ".join(k.split(".")[0] for k in keys),
                            f"put the file in pretrained.root ({path.parent}{where}), or set allow_download: true"))
    return out


def _missing(key: str, files, targets: str, what_to_do: str) -> str:
    return (f"config key {key}: {', '.join(map(str, files))} missing and allow_download is false; a run whose "
            f"targets need them ({targets}, all) stops before any job; {what_to_do}")


def registry():
    """The method registry (``debias.methods``), or None in an environment without torch: the driver's on a cluster
    (``envs/snakemake.yaml``), which builds the DAG but runs no job."""
    try:
        from debias import methods
    except ModuleNotFoundError as err:
        if err.name not in ("torch", "torchvision", "numpy"):
            raise
        return None
    return methods


def method_errors(prefix: str, row: str, entry: dict[str, Any], methods, supplied: tuple[str, ...] = (),
                  row_key: str | None = None) -> list[str]:
    """An unknown method, or the hyperparameters its class needs that a row's ``hparams`` entry lacks (``supplied``:
    keys the job adds from a grid); ``row_key`` names the row in a message about an unknown method."""
    cls, hp = method_entry(row, entry)
    if cls not in methods.names():
        key = f"{prefix}.hparams.{row}.method" if "method" in entry else (row_key or f"{prefix}.hparams.{row}")
        return [f"config key {key}: unknown method {cls!r}; expected one of {', '.join(methods.names())}"]
    method = methods.get(cls)
    required = getattr(method, "hparams", ())
    errors = [f"config key {prefix}.hparams.{row}: method {cls!r} needs {name!r}"
              for name in required if name not in hp and name not in supplied]
    known = (*required, *getattr(method, "optional_hparams", ()), *methods.RUN_KEYS, *supplied)
    for key in hp:
        if key not in known:
            near = difflib.get_close_matches(key, known, n=1)
            errors.append(f"config key {prefix}.hparams.{row}.{key}: method {cls!r} takes no {key!r}"
                          + (f" (did you mean {near[0]!r}?)" if near else "")
                          + f"; it takes {', '.join(sorted(set(known) - {'method'}))}")
    return errors


def row_method(prefix: str, row: str, entry: dict[str, Any], supplied: tuple[str, ...] = ()):
    """(method class, hyperparameters) of a table row for a training job, which checks its row itself (the driver
    may have had no torch to check it with; ``registry``). Raises ConfigError naming the key."""
    from debias import methods

    errors = method_errors(prefix, row, entry, methods, supplied)
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
    cls, hp = method_entry(row, entry)
    return methods.get(cls), hp


SECTIONS = {"fairface": "reweighting.fairface", "l2rw_mnist": "reweighting.l2rw_mnist"}  # experiment -> config key


def _check_methods(section: dict[str, Any], prefix: str, rows: list[str] | None = None) -> list[str]:
    """Every row has an hparams entry naming a known method with the keys it needs (where the registry can be
    imported); ``rows`` default to the section's ``methods``."""
    methods = registry()
    errors = []
    rows = section["methods"] if rows is None else rows
    for i, row in enumerate(rows):
        if row not in section["hparams"]:
            errors.append(f"config key {prefix}.hparams: no entry for method row {row!r} "
                          f"(entries: {', '.join(section['hparams'])})")
            continue
        if methods:
            errors += method_errors(prefix, row, section["hparams"][row], methods, row_key=f"{prefix}.methods[{i}]")
        init = section["hparams"][row].get("init_from")
        if init is not None and init not in rows:
            errors.append(f"config key {prefix}.hparams.{row}.init_from: {init!r} is not a row of the table "
                          f"({', '.join(rows)})")
        if init == row:
            errors.append(f"config key {prefix}.hparams.{row}.init_from: a row cannot start from itself")
    return errors


def _check_colored_mnist(config: dict[str, Any]) -> list[str]:
    from debias.data import mnist

    section = config["colored_mnist"]
    errors = _check_methods(section, "colored_mnist")
    if section["source"] == "authors" and not section.get("authors_dir"):
        errors.append("config key colored_mnist.authors_dir: required when colored_mnist.source is 'authors'")
    elif (section["source"] == "generate" and config["mnist"]["source"] == "torchvision" and config["allow_download"]
          and not config["mnist"].get("mirrors") and mnist.missing_files(config["mnist"]["root"])):
        errors.append("config key mnist.mirrors: MNIST must be downloaded but no mirror is set")
    return errors


def _check_reweighting(config: dict[str, Any]) -> list[str]:
    section = config["reweighting"]
    errors = []
    for exp in ("fairface", "l2rw_mnist"):
        errors += _check_methods(section[exp], f"reweighting.{exp}", rows=section["methods"])
    return errors


COCO_GRID_KEYS = ("lr", "pairing")  # a COCO row's hyperparameters that come from the grid, not from its entry


def _check_coco(config: dict[str, Any]) -> list[str]:
    """The COCO section (optional): rows known, lr of Table 3 in the grid, crop sizes, a download URL if needed."""
    if "coco" not in config:
        return []
    from debias.data import coco_download

    methods = registry()
    section, errors = config["coco"], []
    for aug in section["augmentations"]:
        if aug not in section["hparams"]:
            errors.append(f"config key coco.hparams: no entry for augmentation {aug!r}")
            continue
        if methods:
            errors += method_errors("coco", aug, section["hparams"][aug], methods, supplied=COCO_GRID_KEYS)
    if section["table3_lr"] not in section["lrs"]:
        errors.append(f"config key coco.table3_lr: {section['table3_lr']} is not one of coco.lrs {section['lrs']}")
    f1m = section.get("f1_matched")
    if f1m and not set(f1m["attackers"]) <= set(section["leakage"]["attackers"]):
        errors.append(f"config key coco.f1_matched.attackers: {f1m['attackers']} not all in coco.leakage.attackers "
                      f"{section['leakage']['attackers']}")
    cal = section.get("calibration")
    if cal and cal["augmentation"] not in section["augmentations"]:
        errors.append(f"config key coco.calibration.augmentation: {cal['augmentation']!r} is not one of "
                      f"coco.augmentations {section['augmentations']}")
    if section["table2_split"] not in section["splits"]:
        errors.append(f"config key coco.table2_split: {section['table2_split']!r} is not one of coco.splits")
    img = section["image"]
    if not img["crop"] <= img["stored"] <= img["short_side"]:
        errors.append(f"config key coco.image: expected crop <= stored <= short_side, found {img}")
    if section["source"] == "wang" and not section.get("wang_dir"):
        errors.append("config key coco.wang_dir: required when coco.source is 'wang'")
    elif section["source"] != "embedded":
        if (config["allow_download"] and not section.get("download", {}).get("coco")
                and coco_download.missing(section)):
            errors.append("config key coco.download: the COCO data must be downloaded but no URL is set")
    return errors


def _check_waterbirds(config: dict[str, Any]) -> list[str]:
    """The Waterbirds section (optional): rows known, crop within the resize, selection evaluable."""
    if "waterbirds" not in config:
        return []
    section = config["waterbirds"]
    errors = _check_methods(section, "waterbirds")
    img = section["image"]
    if img["crop"] > img["resize"]:
        errors.append(f"config key waterbirds.image: crop {img['crop']} larger than resize {img['resize']}")
    train = section["train"]
    for row in section["methods"]:
        rules = section["hparams"].get(row, {}).get("select", [])
        if any(r != "last" for r in rules) and (train["eval_every"] != 1 or "val" not in train.get("eval_splits", ["val"])):
            errors.append(f"config key waterbirds.hparams.{row}.select: {rules} selects by validation metrics, which "
                          "needs waterbirds.train.eval_every: 1 and val in waterbirds.train.eval_splits")
    return errors


def _check_matrix(config: dict[str, Any]) -> list[str]:
    """Each dataset's section exists and gives a model and a train entry, its task is registered, its data are drawn
    for the matrix's seeds; each method's own entry is valid with every dataset's schedule (where the registry can
    be imported: the driver of a cluster run may have no torch)."""
    section = config.get("matrix")
    if section is None:
        return []
    errors = []
    methods = registry()
    for name, ds in section["datasets"].items():
        key = f"matrix.datasets.{name}"
        base = config.get(ds["from"]) if "from" in ds else {}
        if base is None:
            continue  # left out of the matrix, with a warning (missing_data)
        for part in ("model", "train"):
            if part not in ds and part not in base:
                errors.append(f"config key {key}: no {part!r} (give one, or `from:` a section that has one)")
        task = ds.get("task", name)
        for role, path in ds["inputs"].items():
            if "{share}" in path and "share" not in ds:
                errors.append(f"config key {key}.inputs.{role}: {path!r} names {{share}} but the entry has no share")
        if "share" in ds and task not in ("fairface", "l2rw_mnist"):
            errors.append(f"config key {key}.share: only a reweighting dataset (fairface, l2rw_mnist) reads a share's "
                          f"split, not {task!r}")
        if task in ("fairface", "l2rw_mnist"):
            extra = sorted(set(section["seeds"]) - set(config["reweighting"]["seeds"]))
            if extra:
                errors.append(f"config key matrix.seeds: {extra} not in reweighting.seeds ({task}'s splits are drawn "
                              f"per seed there)")
        if methods:
            from debias import tasks

            if task not in tasks.names():
                errors.append(f"config key {key}{'.task' if 'task' in ds else ''}: unknown dataset {task!r}; known "
                              f"datasets (src/debias/tasks/): {', '.join(tasks.names())}")
    for row in section["hparams"]:
        if row not in section["methods"]:
            errors.append(f"config key matrix.hparams.{row}: not a method of matrix.methods")
    if methods:
        for i, row in enumerate(section["methods"]):
            entry = section["hparams"].get(row, {})
            for ds in section["datasets"].values():
                found = method_errors("matrix", row, entry, methods, supplied=tuple(ds["schedule"]),
                                      row_key=f"matrix.methods[{i}]")
                errors += [e for e in found if e not in errors]
    return errors
