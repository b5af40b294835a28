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
    ids = pin_gpus(1, sys.argv[1], poll_s=0.05, timeout_s=60)
    start = time.time()
    time.sleep(float(sys.argv[2]))
    print(json.dumps({"ids": ids, "env": os.environ["CUDA_VISIBLE_DEVICES"], "start": start, "end": time.time()}))
    """
)


def run_jobs(tmp_path, n_jobs, env, hold_s=0.6):
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "locks"), str(hold_s)],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, **env}) for _ in range(n_jobs)]
    return [json.loads(p.communicate(timeout=120)[0]) for p in procs]


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
    lock = tmp_path / "locks" / "gpu0.lock"
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
