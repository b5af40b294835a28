#!/usr/bin/env bash
# Here (online to PyPI): download, for the GPU machine (CPython 3.12, x86-64 Linux), the wheels of every package of
# requirements.lock that the machine's image lacks (tools/lock/lockfile.py gpu-wheels: the lock's versions, each
# file checked against the lock's hashes) into .whl/ at the repository root (git-ignored), which the device call
# carries (see session.sh).
#   bash tools/gpu_check/fetch_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=.whl
rm -rf "$dest" && mkdir -p "$dest"
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
           --platform any)
req=$(mktemp) && trap 'rm -f "$req"' EXIT
python3 tools/lock/lockfile.py gpu-wheels | while read -r line; do
  printf '%s\n' "$line" > "$req"
  if ! python3 -m pip download -q --no-deps --require-hashes --only-binary=:all: --python-version 3.12 \
      --implementation cp "${platforms[@]}" -d "$dest" -r "$req" 2>/dev/null; then
    # no wheel on PyPI (connection_pool): build one from its sdist (hash-checked); these are pure Python
    python3 -m pip wheel -q --no-deps --require-hashes -w "$dest" -r "$req"
    name=$(ls -t "$dest" | head -1)
    case "$name" in *-py3-none-any.whl) ;; *) echo "${line%% *}: built $name, not a pure-Python wheel" >&2; exit 1;; esac
  fi
done
n=$(ls "$dest"/*.whl | wc -l)
size=$(du -sm "$dest" | cut -f1)
echo "$n wheels, $size MiB in $dest"
if [ "$size" -gt 48 ]; then
  echo "$dest: $size MiB leaves too little of the device call's 64 MiB for the working tree" >&2
  exit 1
fi
