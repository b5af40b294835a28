import json
import os
import subprocess
import sys
import textwrap
import time

from debias.devices import pin_gpus

CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from debias.devices import pin_gpus
    slots, per_device = (int(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) > 3 else (None, 1)
    ids = pin_gpus(1, sys.argv[1], poll_s=0.05, timeout_s=60, slots=slots, slots_per_device=per_device)
    start = time.time()
    time.sleep(float(sys.argv[2]))
    print(json.dumps({"ids": ids, "env": os.environ["CUDA_VISIBLE_DEVICES"], "start": start, "end": time.time()}))
    """
)


def start_jobs(tmp_path, n_jobs, env, hold_s=0.6, slots=()):
    return [subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "locks"), str(hold_s), *map(str, slots)],
                             stdout=subprocess.PIPE, text=True, env={**os.environ, **env}) for _ in range(n_jobs)]


def finish(procs):
    return [json.loads(p.communicate(timeout=120)[0]) for p in procs]


def run_jobs(tmp_path, n_jobs, env, hold_s=0.6, slots=()):
    return finish(start_jobs(tmp_path, n_jobs, env, hold_s, slots))


FAKE2 = {"DEBIAS_GPU_COUNT": "2", "CUDA_VISIBLE_DEVICES": "", "SLURM_JOB_ID": ""}


def max_on_one_device(jobs):
    """The most jobs that ever ran at the same time on one device."""
    most = 0
    for t in {j["start"] + 1e-4 for j in jobs}:
        for dev in {j["env"] for j in jobs}:
            most = max(most, sum(j["env"] == dev and j["start"] <= t < j["end"] for j in jobs))
    return most


def test_small_jobs_share_a_device_up_to_its_slots(tmp_path):
    jobs = run_jobs(tmp_path, 8, FAKE2, hold_s=1.5, slots=(1, 3))  # one slot of three on two devices
    assert {j["env"] for j in jobs} <= {"0", "1"}
    assert max_on_one_device(jobs) == 3  # shared, and never more than the slots
    for t in {j["start"] + 1e-4 for j in jobs}:
        assert sum(j["start"] <= t < j["end"] for j in jobs) <= 6


def test_small_jobs_pack_onto_the_fullest_device_and_leave_a_whole_one_free(tmp_path):
    first = start_jobs(tmp_path, 1, FAKE2, hold_s=6, slots=(1, 4))
    time.sleep(2.0)  # the first small job holds a slot of some device
    second = finish(start_jobs(tmp_path, 1, FAKE2, hold_s=0.1, slots=(1, 4)))
    whole = finish(start_jobs(tmp_path, 1, FAKE2, hold_s=0.1, slots=(4, 4)))  # every slot of a device
    [a] = finish(first)
    assert second[0]["env"] == a["env"]  # best fit: the device already in use
    assert whole[0]["env"] != a["env"] and whole[0]["end"] < a["end"]  # the other device was whole and free


def test_a_whole_device_waits_for_every_slot(tmp_path):
    env = {**FAKE2, "DEBIAS_GPU_COUNT": "1"}
    small = start_jobs(tmp_path, 2, env, hold_s=2.0, slots=(1, 2))
    time.sleep(1.0)
    [whole] = run_jobs(tmp_path, 1, env, hold_s=0.1, slots=(2, 2))
    held = finish(small)
    assert all(whole["start"] >= j["end"] for j in held)


def overlapping(a, b):
    return a["start"] < b["end"] and b["start"] < a["end"]


def test_concurrent_jobs_never_share_a_device(tmp_path):
    env = {"DEBIAS_GPU_COUNT": "2", "CUDA_VISIBLE_DEVICES": "", "SLURM_JOB_ID": ""}
    jobs = run_jobs(tmp_path, 4, env)
    assert all(j["ids"] == [j["env"]] and j["env"] in {"0", "1"} for j in jobs)
    for i, a in enumerate(jobs):
        for b in jobs[i + 1:]:
            if overlapping(a, b):
                assert a["env"] != b["env"], (a, b)
    assert {j["env"] for j in jobs} == {"0", "1"}


def test_pool_from_cuda_visible_devices(tmp_path):
    jobs = run_jobs(tmp_path, 2, {"CUDA_VISIBLE_DEVICES": "3,5", "SLURM_JOB_ID": ""})
    assert sorted(j["env"] for j in jobs) == ["3", "5"]


def test_lock_released_when_a_job_dies(tmp_path):
    env = {**os.environ, "DEBIAS_GPU_COUNT": "1", "CUDA_VISIBLE_DEVICES": "", "SLURM_JOB_ID": ""}
    holder = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "locks"), "60"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "locks" / "gpu0.slot0.lock"
    for _ in range(200):
        if lock.exists():
            break
        time.sleep(0.05)
    time.sleep(0.5)
    holder.kill()
    holder.wait()
    [job] = run_jobs(tmp_path, 1, {"DEBIAS_GPU_COUNT": "1", "CUDA_VISIBLE_DEVICES": "", "SLURM_JOB_ID": ""}, 0.1)
    assert job["env"] == "0"


def test_no_pinning_under_slurm_or_without_gpus(monkeypatch, tmp_path):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert pin_gpus(1, tmp_path) is None
    monkeypatch.delenv("SLURM_JOB_ID")
    monkeypatch.setenv("DEBIAS_GPU_COUNT", "0")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert pin_gpus(1, tmp_path) is None
    assert pin_gpus(0, tmp_path) is None



def test_auto_says_so_when_the_node_has_gpus_torch_cannot_use(monkeypatch, capsys):
    import torch

    from debias.devices import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("DEBIAS_GPU_COUNT", "2")  # as if nvidia-smi listed two GPUs
    assert resolve_device("auto").type == "cpu"
    err = capsys.readouterr().err
    assert "node has GPUs" in err and "lists 0,1" in err and "training on the CPU" in err
    monkeypatch.setenv("DEBIAS_GPU_COUNT", "0")  # a CPU node: no warning, only the line naming the device
    assert resolve_device("auto").type == "cpu"
    assert capsys.readouterr().err.splitlines() == ["device: cpu (the CPU; config key device: 'auto', "
                                                    "CUDA_VISIBLE_DEVICES=None)"]


def test_the_job_log_names_the_device_it_trains_on(capsys):
    from debias.devices import resolve_device

    assert str(resolve_device("cpu")) == "cpu"
    assert "device: cpu (the CPU; config key device: 'cpu'" in capsys.readouterr().err
