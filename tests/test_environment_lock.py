"""The environment lock (requirements.lock, tools/lock/): the quick start installs from it, the installed
environment is exactly it, and everything else that pins versions (pyproject.toml, the conda files, the GPU check's
wheels) is derived from it or agrees with it. Nothing here asks a package index."""

import re
import sys
import sysconfig
import tomllib
from importlib import metadata

import pytest
import yaml

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools/lock"))
import lockfile  # noqa: E402


@pytest.fixture(scope="module")
def lock():
    return lockfile.read()


def applicable(lock) -> dict[str, str]:
    out = {e.name: e.version for e in lock if e.applies()}
    assert len(out) == sum(e.applies() for e in lock), "two entries of one package apply to this interpreter"
    return out


def test_every_installed_package_is_the_locked_version_and_every_locked_one_is_installed(lock):
    # the environment's own site-packages (setuptools puts its vendored packages' metadata on sys.path once imported)
    site = sysconfig.get_paths()["purelib"]
    installed = {lockfile.canonical(d.metadata["Name"]): d.version for d in metadata.distributions(path=[site])}
    installed.pop("debias")
    locked = applicable(lock)
    assert installed == locked, (
        f"not in the lock (or at another version): "
        f"{ {n: v for n, v in installed.items() if locked.get(n) != v} }; locked but not installed here: "
        f"{ {n: v for n, v in locked.items() if installed.get(n) != v} }")


def test_pyproject_pins_are_the_locked_versions(lock):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    direct = project["dependencies"] + project["optional-dependencies"]["test"]
    locked = {e.name: e.version for e in lock}
    for req in direct:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[a-z,]+\])?==([^\s;]+)", req)
        assert m, f"pyproject.toml: {req!r} is not an exact pin"
        assert locked.get(lockfile.canonical(m[1])) == m[3], f"{req}: the lock has {locked.get(m[1])}"


def test_the_quick_start_installs_the_lock_and_the_project_without_resolving_again():
    readme = (ROOT / "README.md").read_text()
    install = readme.split("<!-- quickstart -->", 1)[1].split("```bash\n", 1)[1].splitlines()[0]
    assert "pip install -q -r requirements.lock" in install
    assert "pip install -q --no-deps --no-build-isolation -e ." in install
    assert "bash tools/lock/compile.sh" in (ROOT / "requirements.lock").read_text().splitlines()[1]


LOCK_TEXT = """\
# header
alpha==1.0 \\
    --hash=sha256:aa \\
    --hash=sha256:ab
    # via debias (pyproject.toml)
beta==2.0 ; sys_platform == 'win32' \\
    --hash=sha256:bb
    # via
    #   alpha
    #   delta
gamma==3.0 \\
    --hash=sha256:cc
    # via beta
delta==4.0 \\
    --hash=sha256:dd
    # via -r tools/lock/bootstrap.in
"""


def test_reading_a_lock_its_hashes_markers_and_who_needs_what(tmp_path):
    path = tmp_path / "requirements.lock"
    path.write_text(LOCK_TEXT)
    entries = {e.name: e for e in lockfile.read(path)}
    assert list(entries) == ["alpha", "beta", "gamma", "delta"]
    assert entries["alpha"].hashes == ["sha256:aa", "sha256:ab"] and entries["alpha"].via == {""}
    assert entries["beta"].via == {"alpha", "delta"} and entries["gamma"].via == {"beta"}
    assert not entries["beta"].applies({"sys_platform": "linux"}) and entries["gamma"].applies()
    # alpha needs beta, beta needs gamma; delta is needed by nobody here
    assert [e.name for e in lockfile.closure(list(entries.values()), ("alpha",))] == ["alpha", "beta", "gamma"]
    assert [e.name for e in lockfile.closure(list(entries.values()), ("gamma",))] == ["gamma"]


def test_a_lock_entry_without_a_hash_is_refused_naming_it(tmp_path):
    path = tmp_path / "requirements.lock"
    path.write_text(LOCK_TEXT.replace("    --hash=sha256:cc\n", "").replace("gamma==3.0 \\", "gamma==3.0"))
    with pytest.raises(lockfile.LockError, match="without a --hash: gamma; regenerate"):
        lockfile.read(path)


def env_pins(name) -> dict[str, str]:
    env = yaml.safe_load((ROOT / "envs" / name).read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {lockfile.canonical(r.split("==")[0]): r.split("==")[1].split(" ;")[0] for r in pip}


def test_conda_envs_pin_the_locked_versions_the_driver_without_torch(lock):
    locked = {e.name: e.version for e in lock}
    jobs, driver = env_pins("torch.yaml"), env_pins("snakemake.yaml")
    assert set(jobs) == set(locked) - {"pip", "setuptools"}
    assert {"snakemake", "snakemake-executor-plugin-slurm", "jsonschema", "pyyaml", "pandas"} <= set(driver)
    assert not {"torch", "torchvision", "mlxtend", "pycocotools", "matplotlib"} & set(driver)
    for name, version in {**jobs, **driver}.items():
        assert locked[name] == version, f"{name}: envs say {version}, requirements.lock {locked[name]}"
