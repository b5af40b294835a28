"""requirements.lock, read: its entries (name, version, environment marker, hashes, and which entries need each),
and the package sets derived from it, so that nothing else pins a version of its own.

  python tools/lock/lockfile.py envs          rewrite the pip sections of envs/torch.yaml and envs/snakemake.yaml
  python tools/lock/lockfile.py gpu-wheels    print the hashed requirement lines the GPU check carries as wheels

`bash tools/lock/compile.sh` runs `envs` after every regeneration of the lock. Standard library only (the GPU
check's fetch script runs it with whatever Python is at hand).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
IMAGE_PACKAGES = ROOT / "tools/gpu_check/image_packages.txt"
ENVS = ROOT / "envs"

# The driver environment (envs/snakemake.yaml): these and everything they need, no torch.
DRIVER_ROOTS = ("snakemake", "snakemake-executor-plugin-slurm", "pyyaml", "jsonschema")
# Packages the GPU image has, carried all the same: pydantic (Snakemake's sqlmodel) needs a newer
# typing-extensions than the image may hold.
CARRY_EVEN_IF_IN_IMAGE = ("typing-extensions",)
# The interpreter of the lent GPU machines' image (the device tool's KINDS.md): CPython 3.12 on x86-64 Linux.
GPU_PYTHON = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
              "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
              "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}

_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Entry:
    name: str  # canonical
    version: str
    marker: str | None
    hashes: list[str] = field(default_factory=list)
    via: set[str] = field(default_factory=set)  # canonical names of the entries that need it; "" for a root

    def applies(self, environment: dict[str, str] | None = None) -> bool:
        """Whether this entry installs on ``environment`` (this interpreter when None)."""
        if not self.marker:
            return True
        try:
            from packaging.markers import Marker
        except ModuleNotFoundError:  # a bare interpreter: pip's own copy
            from pip._vendor.packaging.markers import Marker

        return Marker(self.marker).evaluate(environment)

    def requirement_line(self) -> str:
        marker = f" ; {self.marker}" if self.marker else ""
        return f"{self.name}=={self.version}{marker}"


class LockError(ValueError):
    pass


def read(path: Path = LOCK) -> list[Entry]:
    """Every entry of a lock written by `uv pip compile --generate-hashes` (a forked package, e.g. one version per
    Python range, is two entries)."""
    entries: list[Entry] = []
    in_via = False
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if m := _ENTRY.match(line):
            entries.append(Entry(canonical(m[1]), m[2], m[3]))
            in_via = False
        elif line.strip().startswith("--hash=") and entries:
            entries[-1].hashes.append(line.strip().rstrip("\\").strip().removeprefix("--hash="))
        elif entries and line.strip().startswith("#"):
            text = line.strip().lstrip("#").strip()
            if text == "via":
                in_via = True
            elif text.startswith("via ") or in_via:
                parent = text.removeprefix("via ").strip()
                entries[-1].via.add("" if parent.startswith(("-r ", "debias ")) else canonical(parent))
        elif line.strip() and not line.startswith("#"):
            raise LockError(f"{path}:{n}: not a lock entry of the expected form (name==version [; marker] \\): "
                            f"{line!r}")
    unhashed = [e.name for e in entries if not e.hashes]
    if unhashed:
        raise LockError(f"{path}: entries without a --hash: {', '.join(unhashed)}; regenerate it with "
                        "bash tools/lock/compile.sh")
    return entries


def closure(entries: list[Entry], roots: tuple[str, ...]) -> list[Entry]:
    """The entries of ``roots`` and of everything they need, through the lock's `via` annotations."""
    names = {canonical(r) for r in roots}
    grew = True
    while grew:
        before = len(names)
        names |= {e.name for e in entries if e.via & names}
        grew = len(names) > before
    return [e for e in entries if e.name in names]


def image_packages(path: Path = IMAGE_PACKAGES) -> set[str]:
    return {canonical(line.split("==")[0]) for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")}


def gpu_wheels(entries: list[Entry] | None = None) -> list[Entry]:
    """The entries the GPU check carries as wheels: those that install on the GPU image's Python and that the
    image lacks (and typing-extensions)."""
    entries = read() if entries is None else entries
    image = image_packages()
    return [e for e in entries if e.applies(GPU_PYTHON)
            and (e.name not in image or e.name in CARRY_EVEN_IF_IN_IMAGE)]


def _write_pip_section(env_file: Path, entries: list[Entry]) -> None:
    """Replace everything after the `- pip:` line of a conda environment file by one pinned line per entry."""
    lines = env_file.read_text().splitlines()
    try:
        cut = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    except StopIteration:
        raise LockError(f"{env_file}: no '- pip:' line to put the lock's pins under") from None
    pins = [f"      - {e.requirement_line()}" for e in entries]
    env_file.write_text("\n".join(lines[:cut + 1] + pins) + "\n")


def write_envs(entries: list[Entry] | None = None) -> None:
    entries = read() if entries is None else entries
    runtime = [e for e in entries if e.name not in ("pip", "setuptools")]  # conda brings its own pip
    _write_pip_section(ENVS / "torch.yaml", runtime)
    _write_pip_section(ENVS / "snakemake.yaml", closure(runtime, DRIVER_ROOTS))


def main(argv: list[str]) -> int:
    if argv == ["envs"]:
        write_envs()
        return 0
    if argv == ["gpu-wheels"]:
        for e in gpu_wheels():
            print(" ".join([f"{e.name}=={e.version}"] + [f"--hash={h}" for h in e.hashes]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
