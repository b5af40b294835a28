#!/usr/bin/env bash
# Regenerate requirements.lock, the lock of the whole environment (every package the install brings, transitive
# ones too, pinned with the sha256 of every file PyPI serves for it), from pyproject.toml's dependencies and test
# extra plus tools/lock/bootstrap.in (pip and setuptools). The lock is universal (markers say where a package
# applies, e.g. the CUDA libraries on Linux only) for the Python of pyproject.toml's requires-python floor.
#   bash tools/lock/compile.sh            # after changing a dependency in pyproject.toml; commit both files
#   bash tools/lock/compile.sh --upgrade  # move every unpinned transitive package to its newest release
# uv is the resolver (pinned here, installed into a cache folder the first time); pip installs from the lock.
set -euo pipefail
cd "$(dirname "$0")/../.."
uv_version=0.13.9
tool="${XDG_CACHE_HOME:-$HOME/.cache}/debias-lock/uv-$uv_version"
if [ ! -x "$tool/bin/uv" ]; then
  python3 -m pip install -q --disable-pip-version-check --target "$tool" "uv==$uv_version"
fi
"$tool/bin/uv" pip compile pyproject.toml tools/lock/bootstrap.in --extra test --universal \
  --python-version 3.11 --generate-hashes --quiet --custom-compile-command "bash tools/lock/compile.sh" \
  -o requirements.lock "$@"
python3 tools/lock/lockfile.py envs  # envs/*.yaml pin the same versions
echo "requirements.lock: $(grep -cE '^[a-z0-9]' requirements.lock) packages pinned"
