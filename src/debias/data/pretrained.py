"""Pretrained weights as a dataset: one file per weights under ``pretrained.root``, fetched once by the rule
``pretrained_download`` (only with ``allow_download: true``), never by a training job.

A weights file is named ``<name>-<hex>.pth``, ``<hex>`` being the first 8 or more hex digits of the file's sha256
(torch.hub's convention, which torchvision's published files follow). A model's ``weights`` (config key
``<experiment>.model.weights``) is
- null: random initialisation, no file;
- a torchvision weights name of its arch, e.g. ``IMAGENET1K_V1``: torchvision's file of that name
  (``resnet50-0676ba61.pth``);
- such a file name itself: a checkpoint of your own (a state dict), put in ``pretrained.root`` or on a mirror.
The file is downloaded from ``<mirror><file name>`` for each of ``pretrained.mirrors`` in turn, and checked against
the hash its name carries after a download and whenever a job reads it.

No torch at module level: the workflow imports this module while it builds the DAG.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from debias.errors import DataFormatError, MissingData

DEFAULTS = {"root": "data/weights", "mirrors": ["https://download.pytorch.org/models/"]}  # what config.yaml sets

# torchvision's published files (``ResNet50_Weights.<name>.url``; tests/test_pretrained.py checks them)
TORCHVISION_FILES = {
    "resnet50": {"IMAGENET1K_V1": "resnet50-0676ba61.pth", "IMAGENET1K_V2": "resnet50-11ad3fa6.pth"},
}
FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*-(?P<sha256>[0-9a-f]{8,64})\.pth$")  # as in the schema
FILE_FORM = "<name>-<the first 8 or more hex digits of its sha256>.pth"


def settings(config: dict[str, Any]) -> dict[str, Any]:
    """The config's ``pretrained`` section, its keys left out taking DEFAULTS."""
    return {**DEFAULTS, **(config.get("pretrained") or {})}


def file_name(arch: str, weights: str | None) -> str | None:
    """The file of a model's ``weights``: None for random initialisation, torchvision's file of a weights name of
    ``arch``, or the file name given."""
    if weights is None:
        return None
    named = TORCHVISION_FILES.get(arch, {}).get(weights)
    if named:
        return named
    if not FILE_NAME.match(weights):
        known = ", ".join(TORCHVISION_FILES.get(arch, {})) or "none"
        raise ValueError(f"weights {weights!r}: expected null, a torchvision weights name of {arch} ({known}) or a "
                         f"file name {FILE_FORM}")
    return weights


def sha256_prefix(name: str) -> str:
    """The leading sha256 hex digits a weights file's name carries."""
    m = FILE_NAME.match(name)
    if m is None:
        raise ValueError(f"weights file {name!r}: expected a name {FILE_FORM}")
    return m.group("sha256")


def configured(config: dict[str, Any]) -> dict[str, str]:
    """{config key: weights file name} of every experiment whose model starts from pretrained weights."""
    out = {}
    for section, body in config.items():
        model = body.get("model") if isinstance(body, dict) else None
        if isinstance(model, dict) and model.get("weights") is not None:
            out[f"{section}.model.weights"] = file_name(model.get("arch", ""), model["weights"])
    return out


def weights_path(config: dict[str, Any], name: str) -> Path:
    return Path(settings(config)["root"]) / name


def experiment_file(config: dict[str, Any], section: str) -> str | None:
    """The weights file an experiment's training jobs read (a rule input), or None (random initialisation)."""
    name = configured(config).get(f"{section}.model.weights")
    return None if name is None else str(weights_path(config, name))


def missing(config: dict[str, Any]) -> dict[Path, list[str]]:
    """{weights file not on disk: the config keys that name it}."""
    out: dict[Path, list[str]] = {}
    for key, name in configured(config).items():
        path = weights_path(config, name)
        if not path.is_file():
            out.setdefault(path, []).append(key)
    return out


def config_errors(config: dict[str, Any]) -> list[str]:
    """Weights on an arch that is built from scratch (one without torchvision files); files to download without a
    mirror."""
    errors = [f"config key {section}.model.weights: {body['model']['weights']!r} given for arch "
              f"{body['model'].get('arch')!r}, which is built from scratch; expected null, or arch resnet50"
              for section, body in config.items()
              if isinstance(body, dict) and isinstance(body.get("model"), dict)
              and body["model"].get("weights") is not None and body["model"].get("arch") not in TORCHVISION_FILES]
    if errors:
        return errors
    to_fetch = missing(config) if config["allow_download"] else {}
    if to_fetch and not settings(config)["mirrors"]:
        errors.append(f"config key pretrained.mirrors: {', '.join(map(str, to_fetch))} must be downloaded but no "
                      "mirror is set")
    return errors


def download(name: str, root: str | Path, mirrors: list[str]) -> Path:
    """Fetch ``root/name`` from the first of ``mirrors`` that has it, checked against the hash its name carries
    (debias.data.download: resumable; a file of another hash is deleted, nothing is left under the name)."""
    from debias.data.download import download_file

    return download_file([mirror + name for mirror in mirrors], Path(root) / name, sha256=sha256_prefix(name))


def check_file(path: str | Path) -> Path:
    """``path``, after checking that its sha256 starts with the hex digits its name carries."""
    from debias.data.download import file_digest

    path = Path(path)
    if not path.is_file():
        raise MissingData(f"weights file {path} not found (config keys pretrained.root and <experiment>.model.weights)"
                          "; with allow_download: true the workflow fetches it before any training job")
    want, got = sha256_prefix(path.name), file_digest(path, "sha256")
    if not got.startswith(want):
        raise DataFormatError(f"weights file {path}: sha256 {got}, expected one starting with {want} (the hash its "
                              "name carries): the file is damaged or not the one its name says; delete it and rerun "
                              "(allow_download: true fetches it again) or put the right file in its place")
    return path


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """The state dict of a weights file (its hash checked first), read with ``torch.load(weights_only=True)``."""
    import pickle

    import torch

    try:
        state = torch.load(check_file(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise DataFormatError(f"weights file {path}: not readable by torch.load(weights_only=True) ({exc})") from None
    expected = f"weights file {path}: expected a state dict (parameter name -> tensor)"
    if not isinstance(state, dict):
        raise DataFormatError(f"{expected}, found a {type(state).__name__}")
    others = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if others:
        raise DataFormatError(f"{expected}, found entries that are not tensors: {', '.join(map(str, others[:5]))} (a "
                              "training checkpoint? save its model's state_dict() alone)")
    return state


def job_file(model: dict[str, Any], path: str | None, key: str) -> str | None:
    """The weights file a training job builds its model from: ``path`` (the rule's input ``weights``), checked to be
    the file that ``model.weights`` (config ``key``) names; None for random initialisation."""
    want = file_name(model.get("arch", ""), model.get("weights"))
    if want is None:
        return None
    if path is None or Path(path).name != want:
        raise MissingData(f"config key {key}: {model['weights']!r} needs the weights file {want}, but the job was "
                          f"given {path or 'none'} (the training rules pass it as their input 'weights')")
    return path
