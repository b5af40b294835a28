"""A real one-node Slurm cluster for the tests, from Debian's slurm-wlm and munge packages.

``start()`` writes a slurm.conf into a temporary folder (fake GPUs: two empty files behind ``Gres=gpu:2``),
starts munged if it is not running, then slurmctld and slurmd in configless mode: client commands and the
job steps find the configuration in slurmd's cache (/run/slurm/conf), so nothing is written under /etc.
(The Slurm executor's job step drops every SLURM_* variable before it calls srun, SLURM_CONF included, so a
cluster known only through SLURM_CONF would fail inside the jobs.)

Whatever prevents the cluster from starting is raised as ``Unavailable`` with the reason, for the test to
skip with it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PROGRAMS = ["munged", "munge", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scontrol"]
CONF_CACHE = Path("/run/slurm/conf")  # where slurmd keeps the configuration it fetched (configless mode)


class Unavailable(RuntimeError):
    """Slurm cannot be started here; the message says why."""


@dataclass
class Cluster:
    root: Path
    node: str
    partition: str = "debug"
    pids: dict = field(default_factory=dict)
    started_munged: bool = False

    def jobs(self) -> list[dict]:
        """Every job the controller still knows (finished ones stay MinJobAge seconds), with its GPU request."""
        out = run(["scontrol", "-o", "show", "job"]).stdout
        jobs = []
        for line in out.splitlines():
            fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            if "JobId" in fields:
                jobs.append(fields)
        return jobs

    def log_tail(self, n: int = 20) -> str:
        parts = []
        for name in ("slurmctld.log", "slurmd.log"):
            p = self.root / name
            if p.is_file():
                parts.append(f"--- {p}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-n:]))
        return "\n".join(parts)

    def stop(self) -> None:
        subprocess.run(["scontrol", "shutdown"], capture_output=True, timeout=30)
        for name in ("slurmctld", "slurmd"):
            pid = read_pid(self.root / f"{name}.pid")
            if pid and wait_gone(pid, 10) is False:
                os.kill(pid, signal.SIGKILL)
        if CONF_CACHE.is_symlink():  # slurmd links it to its spool folder; a stale one makes every
            CONF_CACHE.unlink()       # Slurm client (and the executor plugin at start) wait for a dead controller
        else:
            shutil.rmtree(CONF_CACHE, ignore_errors=True)
        if self.started_munged:
            pid = read_pid(Path("/run/munge/munged.pid"))
            if pid:
                os.kill(pid, signal.SIGTERM)


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def running(program: str) -> bool:
    return subprocess.run(["pgrep", "-x", program], capture_output=True).returncode == 0


def check_prerequisites() -> None:
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    if missing:
        raise Unavailable(f"not installed: {', '.join(missing)} (apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        raise Unavailable("the test cluster runs slurmd as root (SlurmdUser=root); run the tests as root")
    if Path("/etc/slurm/slurm.conf").exists() or os.environ.get("SLURM_CONF"):
        raise Unavailable("this machine already has a Slurm configuration (/etc/slurm/slurm.conf or SLURM_CONF); "
                          "not starting a test cluster beside it")
    busy = [p for p in ("slurmctld", "slurmd") if running(p)]
    if busy:
        raise Unavailable(f"{', '.join(busy)} already running on this machine")


def ensure_munged() -> bool:
    """Start munged unless it answers already; True when this call started it."""
    if run(["sh", "-c", "munge -n | unmunge"]).returncode == 0:
        return False
    if not Path("/etc/munge/munge.key").is_file():
        raise Unavailable("no /etc/munge/munge.key (the munge package creates it on install)")
    Path("/run/munge").mkdir(parents=True, exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    proc = run(["munged", "--force"])
    if proc.returncode != 0:
        raise Unavailable(f"munged did not start: {proc.stderr.strip()}")
    for _ in range(50):
        if run(["sh", "-c", "munge -n | unmunge"]).returncode == 0:
            return True
        time.sleep(0.1)
    raise Unavailable("munged started but does not answer")


def node_line(n_gpus: int) -> tuple[str, str]:
    """The node's own description (`slurmd -C`: CPUs, sockets, cores, memory) with fake GPUs added."""
    proc = run(["slurmd", "-C"])
    first = proc.stdout.splitlines()[0] if proc.stdout else ""
    if proc.returncode != 0 or not first.startswith("NodeName="):
        raise Unavailable(f"slurmd -C did not describe this node: {proc.stderr.strip() or proc.stdout.strip()}")
    node = first.split()[0].split("=", 1)[1]
    return node, f"{first} Gres=gpu:{n_gpus} State=UNKNOWN"


def write_config(root: Path, node_description: str, node: str, ctld_port: int, slurmd_port: int,
                 n_gpus: int) -> Path:
    gpus = root / "gpus"
    gpus.mkdir()
    for i in range(n_gpus):
        (gpus / f"gpu{i}").touch()
    for d in ("state", "spool"):
        (root / d).mkdir()
    conf = root / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=debiastest",
        f"SlurmctldHost={node}",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}",
        "SlurmctldParameters=enable_configless",
        "AuthType=auth/munge",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldLogFile={root / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'slurmd.log'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}",
        "SchedulerType=sched/backfill",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "GresTypes=gpu",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "MinJobAge=600",  # finished jobs stay visible to squeue, which the executor polls
        "ReturnToService=2",
        node_description,
        f"PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP",
        "",
    ]))
    (root / "gres.conf").write_text(f"NodeName={node} Name=gpu File={gpus}/gpu[0-{n_gpus - 1}]\n")
    return conf


def start(root: Path, n_gpus: int = 2, timeout_s: float = 30) -> Cluster:
    check_prerequisites()
    node, description = node_line(n_gpus)
    ctld_port, slurmd_port = free_port(), free_port()
    conf = write_config(root, description, node, ctld_port, slurmd_port, n_gpus)
    cluster = Cluster(root=root, node=node, started_munged=ensure_munged())
    env = {k: v for k, v in os.environ.items() if k != "SLURM_CONF"}
    try:
        for cmd in (["slurmctld", "-f", str(conf)], ["slurmd", "--conf-server", f"{node}:{ctld_port}"]):
            proc = run(cmd, env=env)
            if proc.returncode != 0:
                raise Unavailable(f"{cmd[0]} did not start: {proc.stderr.strip()}\n{cluster.log_tail()}")
            time.sleep(0.5)
        deadline = time.time() + timeout_s
        state = ""
        while time.time() < deadline:
            state = run(["sinfo", "-h", "-n", node, "-o", "%T"], env=env).stdout.strip()
            if state == "idle":
                return cluster
            time.sleep(0.5)
        raise Unavailable(f"node {node} not idle after {timeout_s:.0f} s (state {state!r})\n{cluster.log_tail()}")
    except BaseException:
        cluster.stop()
        raise
