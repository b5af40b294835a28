"""Device placement without a GPU: every method's update run on PyTorch's ``meta`` device, which mixes with CPU
tensors as a GPU does (an op on both fails), so a tensor made on the CPU by mistake shows here as it would on
CUDA. Meta tensors carry no values: a method whose ``attach`` reads the data (class counts, group counts) cannot
be set up this way and is covered on a GPU by tests/test_cuda.py."""

import pytest
import torch
import yaml

from conftest import ROOT
from debias.throughput import cases_from_config, setup_case

META = torch.device("meta")


def cases():
    """Every table row of the full config as configured, and batched (2 runs) where its method batches."""
    from dataclasses import replace

    from debias import methods
    from debias.batched import batchable

    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    out = {}
    for c in cases_from_config(cfg):
        if c.variant == "as configured":
            out[(c.experiment, c.row, 1)] = c
            if batchable(methods.get(c.method)):
                out[(c.experiment, c.row, 2)] = replace(c, batch_runs=2, channels_last=False, variant="2 runs batched")
    return out


CASES = cases()
# attach reads values (bincount of classes / groups, .item()): no meta setup, tests/test_cuda.py covers them
VALUE_ATTACH = {"proportion", "resample", "hardmining", "nomix", "mixup", "cutmix", "groupdro", "fisher_flat"}


@pytest.mark.parametrize("key", [k for k, c in CASES.items() if c.method not in VALUE_ATTACH],
                         ids=lambda k: f"{k[0]}-{k[1]}" + ("-batched" if k[2] > 1 else ""))
def test_an_update_on_the_meta_device_keeps_every_tensor_there(key):
    method, batch = setup_case(CASES[key], META)
    for _ in range(2):
        logs = method.update(batch())
        off = {k: v.device for k, v in logs.items() if v.device != META}
        assert not off, f"{key}: logged values left on another device: {off}"
    for name, p in method.modules.named_parameters():
        assert p.device == META, name


def test_every_method_of_the_configs_is_covered_here_or_on_a_gpu():
    rows = {c.method for c in CASES.values()}
    assert VALUE_ATTACH <= rows and rows - VALUE_ATTACH >= {"baseline", "lnl_adaptive", "l2rw", "erm"}
