#!/usr/bin/env bash
# One short, prepared check of a GPU node, for issue 14 and for any user before a full-scale run:
#   bash tools/gpu_check/session.sh
# Within GPU_CHECK_BUDGET_S seconds (default 540) it runs, in this order, each step capped so that the later ones
# still get time and a step that overruns is killed (what it measured so far is kept):
#   1. photo      ResNet-50 training throughput of COCO's and Waterbirds' rows (images/s, memory, GPU use)
#   2. gpu_tests  the tests marked `gpu` (pytest -m gpu): every table row's method steps on CUDA without a CPU
#                 tensor, a non-deterministic kernel or a host wait; a COCO run killed on the GPU resumes
#                 bit-identically
#   3. small      the small networks' rows (colored MNIST, FairFace; batched variants too), uncompiled,
#                 with the projection of each table row's device hours, one run at a time and batched
#   4. mini_cuda  the whole mini pipeline through Snakemake with every training job on the GPU, small jobs
#                 sharing it (tools/gpu_check/mini_on_cuda.yaml); skipped without a GPU
#   5. packed     4 processes of colored MNIST's baseline on one device at once (what slot sharing gains)
#   6. compiled   the torch.compile variants of the small networks, with whatever time is left
# and last, issue 14's targets beside what was measured (tools/gpu_check/targets.py -> targets.txt)
# Everything goes to results/gpu_check/ (GPU_CHECK_OUT); where $OUT is set (the device tool), the CSVs, the log
# and one archive of the rest are copied there. Needs torch, torchvision, pandas, matplotlib, seaborn, PyYAML;
# steps 2 and 4 also need pytest, Snakemake, mlxtend, pycocotools and jsonschema: for a machine without them, run
# tools/gpu_check/fetch_wheels.sh where PyPI is reachable and bring .whl/ along (installed below into /tmp;
# GPU_CHECK_WHEELS names another folder).
# GPU_CHECK_CONFIG (default config/config.yaml) and GPU_CHECK_SECONDS (timed seconds per case, default 3) set
# what the throughput steps time; GPU_CHECK_STEPS (default: all six, in that order) which steps run.
set -uo pipefail
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$self")/../.."
budget=${GPU_CHECK_BUDGET_S:-540}
steps=" ${GPU_CHECK_STEPS:-photo gpu_tests small mini_cuda packed compiled} "
seconds=${GPU_CHECK_SECONDS:-3}
config=${GPU_CHECK_CONFIG:-config/config.yaml}
work=${GPU_CHECK_OUT:-results/gpu_check}
t0=$(date +%s)
mkdir -p "$work"
if [ -z "${GPU_CHECK_LOGGED:-}" ]; then  # the whole session again, its output into the log as well
  GPU_CHECK_LOGGED=1 bash "$self" "$@" 2>&1 | tee "$work/session.log"
  rc=${PIPESTATUS[0]}
  [ -n "${OUT:-}" ] && cp "$work/session.log" "$OUT"/
  exit "$rc"
fi

wheels=${GPU_CHECK_WHEELS:-.whl}
if ls "$wheels"/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_check_site \
    "$wheels"/*.whl && export PYTHONPATH=/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

left() { echo $(( budget - ($(date +%s) - t0) )); }
step() {  # step NAME CAP_S COMMAND...: run COMMAND for at most min(CAP_S, budget left) seconds
  local name=$1 cap=$2 l s rc
  shift 2
  if [[ $steps != *" $name "* ]]; then echo "== $name: not in GPU_CHECK_STEPS"; return; fi
  l=$(left)
  if (( l < 15 )); then echo "== $name: skipped, the budget of $budget s is spent"; return; fi
  (( cap > l )) && cap=$l
  echo "== $name: at most $cap s: $*"
  s=$(date +%s)
  timeout --kill-after=10 "$cap" "$@"
  rc=$?
  echo "== $name: exit $rc after $(( $(date +%s) - s )) s$( ((rc == 124)) && echo ' (stopped at its cap)')"
}

echo "== $(date -u +%FT%TZ) budget $budget s, config $config, $seconds s per case"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpu',
torch.cuda.get_device_name() if torch.cuda.is_available() else None, 'cpus', __import__('os').cpu_count())"
gpu=$(python3 -c "import torch; print(int(torch.cuda.is_available()))")

tp=(python3 -m debias.throughput --config "$config" --seconds "$seconds")
step photo 110 "${tp[@]}" --only coco,waterbirds --compiled without --out "$work/throughput_photo.csv"
step gpu_tests 120 python3 -m pytest -q -m gpu -p no:cacheprovider -rs tests/ --junitxml "$work/gpu_tests.xml"
step small 110 "${tp[@]}" --only colored_mnist,fairface --compiled without --out "$work/throughput_small.csv"
if [ "$gpu" = 1 ] || [[ $steps != *" mini_cuda "* ]]; then
  step mini_cuda 140 python3 -m snakemake all --cores 16 --resources gpu=1 --keep-going --scheduler greedy \
    --configfile config/mini.yaml tools/gpu_check/mini_on_cuda.yaml
else
  echo "== mini_cuda: skipped, torch sees no GPU"
fi
step packed 60 bash -c "${tp[*]} --case colored_mnist/baseline --processes 4 --start-delay ${GPU_CHECK_PACKED_DELAY:-30} > $work/packed.json"
step compiled 600 "${tp[@]}" --only colored_mnist,fairface --compiled only --out "$work/throughput_compiled.csv"

for f in "$work"/*.csv "$work"/packed.json; do
  [ -s "$f" ] && { echo "== $f"; cat "$f"; }
done
echo "== targets"
python3 tools/gpu_check/targets.py "$work" "$config"
if [ -n "${OUT:-}" ]; then
  cp "$work"/throughput_photo.csv "$work"/throughput_small.csv "$work"/throughput_small_projection.csv \
    "$work"/targets.txt "$OUT"/ 2>/dev/null
  tar czf "$OUT/gpu_check.tgz" "$work" $(ls -d results/mini_cuda/tables results/mini_cuda/logs 2>/dev/null) \
    $(find results/mini_cuda/runs -name metrics.json 2>/dev/null) \
    $(find .snakemake/log -newer "$work/session.log" -name '*.log' 2>/dev/null)
fi
echo "== done after $(( $(date +%s) - t0 )) s"
