#!/usr/bin/env bash
# Here (online to PyPI): download the wheels of wheels.txt for the GPU machine (CPython 3.12, x86-64 Linux) into
# .whl/ at the repository root (git-ignored), which the device call carries (see session.sh).
#   bash tools/gpu_check/fetch_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=.whl
mkdir -p "$dest"
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
           --platform any)
grep -v '^#' tools/gpu_check/wheels.txt | while read -r pin; do
  [ -n "$pin" ] || continue
  if ! python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      "${platforms[@]}" -d "$dest" "$pin" 2>/dev/null; then
    # no wheel on PyPI (connection_pool): build one from the sdist; these are pure Python
    python3 -m pip wheel -q --no-deps -w "$dest" "$pin"
    name=$(ls -t "$dest" | head -1)
    case "$name" in *-py3-none-any.whl) ;; *) echo "$pin: built $name, not a pure-Python wheel" >&2; exit 1;; esac
  fi
done
n=$(ls "$dest"/*.whl | wc -l)
size=$(du -sm "$dest" | cut -f1)
echo "$n wheels, $size MiB in $dest"
if [ "$size" -gt 48 ]; then
  echo "$dest: $size MiB leaves too little of the device call's 64 MiB for the working tree" >&2
  exit 1
fi
