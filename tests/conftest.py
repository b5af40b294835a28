import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def embedded_mnist_root(tmp_path_factory):
    from debias.data.mini.mnist import write_embedded_mnist

    root = tmp_path_factory.mktemp("mnist")
    write_embedded_mnist(root, test_per_class=100, seed=0)
    return root


@pytest.fixture(scope="session")
def embedded_mnist(embedded_mnist_root):
    from debias.data.mnist import read_mnist

    return read_mnist(embedded_mnist_root)


def snakemake(*args, cwd=ROOT, check=False, timeout=900, env=None, **kw):
    """Run snakemake from the repository root, without the default profile leaking into tests."""
    cmd = [sys.executable, "-m", "snakemake", "--workflow-profile", "none", *map(str, args)]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(map(str, args))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def job_counts(stdout: str) -> dict[str, int]:
    """Jobs per rule from the job-stats table of a (dry) run's output."""
    counts = {}
    for line in stdout.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m:
            counts[m.group(1)] = int(m.group(2))
    return counts


def full_data_missing_downloads_off(tmp_path, experiment, mutate_section):
    """Dry-run ``experiment`` with its full-scale section, data under a missing folder and ``allow_download:
    false``; check the run stopped before any job (Snakemake: missing input files), warned with the key and wrote
    nothing; return its console output."""
    def mutate(cfg):
        cfg["allow_download"] = False
        cfg[experiment] = yaml.safe_load((ROOT / "config/config.yaml").read_text())[experiment]
        mutate_section(cfg[experiment], tmp_path / "nowhere")

    proc = snakemake(experiment, "-n", "--cores", 1, "--configfile", write_config(tmp_path, mutate))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "allow_download is false" in out and f"Missing input files for rule {experiment}_" in out
    assert not job_counts(proc.stdout)
    assert not (tmp_path / "results").exists()
    return out


def write_config(tmp_path, mutate, base="mini.yaml"):
    """A copy of config/<base> with every output under tmp_path/results, changed by ``mutate(cfg)``."""
    cfg = yaml.safe_load((ROOT / "config" / base).read_text())
    cfg["results"] = str(tmp_path / "results")
    if cfg["mnist"]["source"] == "embedded":
        cfg["mnist"]["root"] = str(tmp_path / "results" / "data" / "mnist")
    if cfg["reweighting"]["fairface"]["source"] == "embedded":
        cfg["reweighting"]["fairface"]["root"] = str(tmp_path / "results" / "data" / "fairface")
    if cfg.get("coco", {}).get("source") == "embedded":
        cfg["coco"]["root"] = str(tmp_path / "results" / "data" / "coco")
    if cfg.get("waterbirds", {}).get("source") == "embedded":
        cfg["waterbirds"]["root"] = str(tmp_path / "results" / "data" / "waterbirds")
    mutate(cfg)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
