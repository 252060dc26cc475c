#!/usr/bin/env bash
# Reproduces the GPU numbers in bench/RESULTS.md in one run on one GPU machine, Lapis and its
# peers side by side:
#   bench/run_gpu_session.sh BUILD_DIR OUT_DIR PYG_GT_PY ZINC_TRAIN_TU_DIR [TRAIN_HOURS]
# BUILD_DIR holds bin/ and tests/ of a CUDA build; PYG_GT_PY is ../shared/bench/pyg_gt.py;
# ZINC_TRAIN_TU_DIR the uncompressed ZINC_subset_train TU folder (for the PyG peer).
# Writes OUT_DIR/check/{tests.log,summary.txt,bench_dense.md} (every test binary with
# LAPIS_REQUIRE_CUDA=1, then bench_dense), OUT_DIR/session.md (attention benchmark, PyG peer,
# ZINC epoch times) or, with TRAIN_HOURS > 0, full ZINC training for the reference's four seeds
# (OUT_DIR/zinc_train_SEED.txt and zinc_log_SEED.csv). NORMALS_GPU_ARGS (environment) holds the
# arguments of bench_normals_gpu.
set -uo pipefail
build=$1 out=$2 pyg_gt=$3 zinc_tu=$4 hours=${5:-0}
NORMALS_GPU_ARGS=${NORMALS_GPU_ARGS:---cuda-only}
export LAPIS_SOURCE_DIR=$PWD
mkdir -p "$out/check"
md="$out/session.md"
section() { printf '\n## %s\n\n```\n' "$1" >> "$md"; }
endsection() { printf '```\n' >> "$md"; }
{ echo "# GPU session $(date -u +%F)"; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; } > "$md"

if [ "$hours" = 0 ]; then
  scripts/gpu_check.sh "$build" "$out/check" > /dev/null 2>&1
  section "tests (LAPIS_REQUIRE_CUDA=1)"; cat "$out/check/summary.txt" >> "$md"; endsection
  section "bench_graph_attention --device cuda"
  "$build/bin/bench_graph_attention" --device cuda >> "$md" 2>&1; endsection
  section "PyG peer: bench/pyg_attention.py"
  python3 bench/pyg_attention.py >> "$md" 2>&1; endsection
  section "PyG peer: pyg_gt.py, ZINC train split, L=10 C=64 batch 128"
  python3 "$pyg_gt" --zinc "$zinc_tu" --epochs 4 >> "$md" 2>&1; endsection
  section "bench_lappe grid --cuda: 1000x1000 grid + 1M random edges, k=10, Lanczos on the GPU"
  timeout 180 "$build/bin/bench_lappe" grid --side 1000 --extra 1000000 --cuda >> "$md" 2>&1
  endsection
  if [ -x "$build/bin/bench_normals_gpu" ]; then
    section "bench_normals_gpu: CUDA PCA normals (k=10) throughput"
    timeout 240 "$build/bin/bench_normals_gpu" $NORMALS_GPU_ARGS >> "$md" 2>&1; endsection
  fi
  section "lapis train-graph --dataset zinc --device cuda (published config)"
  "$build/bin/lapis" train-graph --dataset zinc --device cuda --epochs 4 --quiet \
    --cache-dir /tmp/lapis_cache >> "$md" 2>&1; endsection
  section "bench_dense at graph-transformer sizes (per call: one synchronised, back to back, host)"
  "$build/bin/bench_dense" --device cuda --rows 3000 --repeats 10 >> "$md" 2>&1; endsection
else
  # The reference's four seeds, trained concurrently on the one GPU (each run is launch-bound
  # and leaves most of the GPU idle).
  for seed in 41 95 22 35; do
    "$build/bin/lapis" train-graph --dataset zinc --device cuda --max-hours "$hours" --quiet \
      --seed $seed --out /tmp/zinc_$seed --cache-dir /tmp/lapis_cache \
      > "$out/zinc_train_$seed.txt" 2>&1 &
  done
  wait
  for seed in 41 95 22 35; do cp /tmp/zinc_$seed/log.csv "$out/zinc_log_$seed.csv"; done
fi
