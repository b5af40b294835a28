"""On a GPU only (skipped without one; tools/gpu_check/session.sh runs them): every table row's method, as
configured and batched where it batches, takes training steps on CUDA with the full config's synthetic data of
the real shapes (the throughput benchmark's set-up) and

- keeps every logged value on the device (a CPU tensor there breaks a batched run's epoch means),
- runs no operation without a deterministic CUDA implementation when its config asks for determinism (those
  only warn in training jobs, ``warn_only``; here a warning is a failure),
- never makes the host wait for the GPU inside ``update`` (``torch.cuda.set_sync_debug_mode``).

Other GPU tests live beside their CPU versions, marked ``gpu`` (``pytest -m gpu`` selects them all), e.g. a COCO
run killed on the GPU resumes there to the numbers of one that ran through (tests/test_coco_resume.py)."""

import warnings

import pytest
import torch

from test_device_placement import cases

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CASES = cases()


@pytest.mark.parametrize("key", list(CASES), ids=lambda k: f"{k[0]}-{k[1]}" + ("-batched" if k[2] > 1 else ""))
def test_steps_on_cuda_stay_on_the_device_deterministic_and_without_waiting(key):
    from debias.throughput import setup_case

    case = CASES[key]
    device = torch.device("cuda")
    method, batch = setup_case(case, device)
    method.train(True)
    method.update(batch())  # first step: kernels chosen, allocator filled
    b = batch()
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            logs = method.update(b)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    messages = [str(w.message) for w in caught]
    off = {k: str(v.device) for k, v in logs.items() if v.device.type != "cuda"}
    assert not off, f"logged values off the GPU: {off}"
    assert all(torch.isfinite(v).all() for v in logs.values()), logs
    if case.deterministic:
        nondeterministic = [m for m in messages if "deterministic" in m]
        assert not nondeterministic, nondeterministic[:3]
    syncs = [m for m in messages if "synchroniz" in m]
    assert not syncs, f"{len(syncs)} host waits in update(): {syncs[:3]}"

