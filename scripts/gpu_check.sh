#!/usr/bin/env bash
# The GPU check of issue 16, as one command: CUDA tests, bench (float32 and --amp), batch prediction
# throughput, bench-train with AMP, and optionally a generalist training run. Each step runs under its own
# time limit and its failure is recorded without stopping the rest; the limits add up to under 8 minutes.
#
#   bash scripts/gpu_check.sh [--device cuda|cpu] [--quick] [--out DIR] [--only STEPS]
#                             [--generalist DIR] [--generalist-s N]
#
#   --device      cuda (default) or cpu. On the CPU pass --quick: tiny sizes, the CUDA tests skipped
#                 (tests/test_gpu_check_script.py runs it so in CI).
#   --quick       smoke-test sizes for every step (CI, CPU).
#   --out DIR     where summary.md, summary.json and logs.txt go (default: $OUT, else ./gpu_check_out).
#   --only STEPS  comma-separated subset of tests,bench,throughput,bench-train,generalist (a rerun).
#   --generalist DIR   step 5: train a model on the dataset folder DIR (anything `python -m engine train
#                 --data` reads; for the device, a folder of the project that .git/info/exclude ignores, named
#                 in `carry`, e.g. .pack/generalist/{images,labels}/*.png: one 16-bit label PNG per image,
#                 0 = background, each other value one instance). Extra train flags: $GENERALIST_ARGS. It
#                 stops cleanly (--cancel-file) after --generalist-s seconds (default 300) and its float16
#                 checkpoint comes back in 15 MiB parts: cat generalist.fp16.safetensors.part-* > model.safetensors
#
# On the device machine (Python 3.12 with torch, no PySide6): pycocotools comes from a carried .whl/
# (make it here once: python scripts/gpu_check.py wheels), the project from PYTHONPATH (and a
# `pip install --no-deps --no-build-isolation -e .` when it installs). The device tool's call:
#   command: bash scripts/gpu_check.sh --device cuda      carry: [".whl"]      timeout_s: 560
set -uo pipefail

DEVICE=cuda
QUICK=0
OUTDIR="${OUT:-}"
GENERALIST=""
GENERALIST_S=300
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --out) OUTDIR="$2"; shift 2 ;;
    --generalist) GENERALIST="$2"; shift 2 ;;
    --generalist-s) GENERALIST_S="$2"; shift 2 ;;
    --only) ONLY=",$2,"; shift 2 ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO" || exit 2
OUTDIR="${OUTDIR:-$REPO/gpu_check_out}"
mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
PY="${PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
export PYTHONUNBUFFERED=1 GPU_CHECK_FIGURES="$WORK/figures.jsonl"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
: >"$WORK/steps.tsv"
: >"$GPU_CHECK_FIGURES"
printf '{"started": "%s", "device": "%s", "quick": %s, "commit": "%s"}\n' "$(date -u '+%Y-%m-%d %H:%M')" \
  "$DEVICE" "$([ $QUICK = 1 ] && echo true || echo false)" "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
  >"$WORK/meta.json"

# Time limits (seconds). Full (GPU): 25 + 150 + 2x45 + 40+50 + 110 = 465 s, inside the 8 minutes.
if [ "$QUICK" = 1 ]; then
  T_SETUP=60 T_TESTS=150 T_BENCH=150 T_THROUGHPUT=150 T_THROUGHPUT_AMP=150 T_TRAIN=240
else
  T_SETUP=25 T_TESTS=150 T_BENCH=45 T_THROUGHPUT=40 T_THROUGHPUT_AMP=50 T_TRAIN=110
fi

summarise() {
  "$PY" scripts/gpu_check.py summary "$WORK" "$OUTDIR" || echo "summary failed" >&2
  : >"$OUTDIR/logs.txt"
  while IFS=$'\t' read -r key _; do
    { echo "======== $key ========"; cat "$WORK/$key.log"; echo; } >>"$OUTDIR/logs.txt"
  done <"$WORK/steps.tsv"
}

# step KEY BUDGET COMMAND...: run COMMAND under `timeout`, its output in $WORK/KEY.log, then the summary.
step() {
  local key="$1" budget="$2"
  shift 2
  echo "== $key (limit ${budget}s): $*"
  local start end rc
  start=$(date +%s%N)
  timeout -k 10 "$budget" "$@" >"$WORK/$key.log" 2>&1
  rc=$?
  end=$(date +%s%N)
  printf '%s\t%s\t%s\t%s\t%s\n' "$key" "$rc" "$(((end - start) / 1000000))" "$budget" "$(printf '%q ' "$@")" >>"$WORK/steps.tsv"
  echo "   rc $rc, $(tail -n 1 "$WORK/$key.log")"
  summarise
}

skip_step() {  # KEY REASON
  echo "$2" >"$WORK/$1.log"
  printf '%s\t-1\t0\t0\t%s\n' "$1" "(not run)" >>"$WORK/steps.tsv"
  summarise
}

# wanted KEY: whether --only (if given) names the step KEY
wanted() { [ -z "$ONLY" ] || [[ "$ONLY" == *",$1,"* ]]; }

setup() {
  local site="$WORK/site"
  if ls .whl/*.whl >/dev/null 2>&1 && ! "$PY" -c "import pycocotools" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl \
      && echo "installed from .whl: $(ls .whl)"
  fi
  if ! (cd / && "$PY" -c "import engine" 2>/dev/null); then
    "$PY" -m pip install -q --no-deps --no-build-isolation -e . || echo "pip install -e . failed: PYTHONPATH is used"
  fi
  "$PY" scripts/gpu_check.py env >"$WORK/env.json"
  cat "$WORK/env.json"
  "$PY" -c "import pycocotools, engine.training.loop" && echo "setup ok"
}

# setup() installs into $WORK/site; later steps need it on the path
export PYTHONPATH="$PYTHONPATH:$WORK/site" PY WORK OUTDIR DEVICE GENERALIST GENERALIST_S
export -f setup
step setup "$T_SETUP" bash -c setup

# 1. The CUDA tests (and their CPU twins). In --quick mode on the CPU, only the CUDA ones: they skip.
if ! wanted tests; then
  skip_step tests "not selected (--only)"
elif [ "$QUICK" = 1 ] && [ "$DEVICE" = cpu ]; then
  step tests "$T_TESTS" "$PY" -m pytest tests/engine/test_cuda.py -p no:cacheprovider -v \
    -k "on_cuda or (score_moves and not cpu)"
else
  step tests "$T_TESTS" "$PY" -m pytest tests/engine/test_cuda.py -p no:cacheprovider -v
fi

# 2. python -m engine bench: float32 and --amp.
if [ "$QUICK" = 1 ]; then
  BENCH_ARGS=(--quick --skip-training)
else
  BENCH_ARGS=(--repeats 5)
fi
if wanted bench; then
  step bench "$T_BENCH" "$PY" -m engine bench --device "$DEVICE" "${BENCH_ARGS[@]}"
  step bench-amp "$T_BENCH" "$PY" -m engine bench --device "$DEVICE" --amp "${BENCH_ARGS[@]}"
else
  skip_step bench "not selected (--only)"
  skip_step bench-amp "not selected (--only)"
fi

# 3. Batch prediction throughput at 800x1333, batches doubling until memory runs out.
if ! wanted throughput; then
  skip_step throughput "not selected (--only)"
  skip_step throughput-amp "not selected (--only)"
elif [ "$QUICK" = 1 ]; then
  # batch 1 only: a second size adds ~10 s on a 2-core CPU and nothing the smoke run checks
  step throughput "$T_THROUGHPUT" "$PY" benchmarks/predict_throughput.py --device "$DEVICE" --sizes 128x160 \
    --max-batch 1 --repeats 1 --profile --profile-rows 8
  skip_step throughput-amp "--quick: the --amp throughput runs on the GPU only"
else
  step throughput "$T_THROUGHPUT" "$PY" benchmarks/predict_throughput.py --device "$DEVICE" --sizes 800x1333 \
    --max-batch 64 --repeats 3
  step throughput-amp "$T_THROUGHPUT_AMP" "$PY" benchmarks/predict_throughput.py --device "$DEVICE" --amp \
    --sizes 800x1333 --max-batch 64 --repeats 3 --profile
fi

# 4. bench-train with AMP on the bundled nucleus images (the same 16/4 split as ../shared's nucleus set).
"$PY" scripts/gpu_check.py nuclei "$WORK/nuclei" >/dev/null
if [ "$QUICK" = 1 ]; then
  # 2 steps of 1 image: a smoke run (the held-out evaluation of both models, 500 detections each, is most of it)
  TRAIN_ARGS=(--iters 2 --batch-size 1 --input-size 96 --max-size 128 --roi-samples 32)
else
  TRAIN_ARGS=(--iters 200)
fi
if wanted bench-train; then
  step bench-train "$T_TRAIN" "$PY" -m engine bench-train --device "$DEVICE" --data "$WORK/nuclei" \
    --out "$WORK/bench-train-out" "${TRAIN_ARGS[@]}"
else
  skip_step bench-train "not selected (--only)"
fi

# 5. Optional: the generalist model, stopped cleanly after GENERALIST_S seconds, checkpoint back in parts.
generalist() {
  local run="$WORK/generalist"
  # shellcheck disable=SC2086 # GENERALIST_ARGS is a list of flags
  "$PY" -m engine train --data "$GENERALIST" --out "$run" --device "$DEVICE" --half-copy \
    --cancel-file "$WORK/generalist.stop" ${GENERALIST_ARGS:-} &
  local pid=$!
  (sleep "$GENERALIST_S" && touch "$WORK/generalist.stop") &
  local timer=$!
  wait "$pid"
  local rc=$?
  kill "$timer" 2>/dev/null
  local model="$run/model.fp16.safetensors"
  [ -f "$model" ] || model="$run/model.safetensors"
  if [ -f "$model" ]; then
    split -b 15M -d "$model" "$OUTDIR/generalist.$(basename "$model" | sed 's/^model\.//').part-"
    sha256sum "$model"
    ls -l "$OUTDIR"/generalist.*
  fi
  return $rc
}
if [ -n "$GENERALIST" ] && wanted generalist; then
  export -f generalist
  step generalist $((GENERALIST_S + 90)) bash -c generalist
else
  skip_step generalist "not asked (--generalist DIR)"
fi

echo "summary: $OUTDIR/summary.md"
cat "$OUTDIR/summary.md"
rm -rf "$WORK"
# The exit status says whether the summary was written; each step's own status is in it.
[ -s "$OUTDIR/summary.md" ]
