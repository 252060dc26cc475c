#!/usr/bin/env bash
# Runs every test binary of a build with LAPIS_REQUIRE_CUDA=1 (a CUDA skip is a failure) and the
# dense benchmark on the GPU. Meant for the GPU machine, on binaries built elsewhere:
#   scripts/gpu_check.sh [BUILD_DIR] [OUT_DIR]
# Writes tests.log, bench_dense.md and a summary line per binary; exits non-zero on any failure.
set -uo pipefail
build=${1:-build}
out=${2:-gpu_out}
mkdir -p "$out"
export LAPIS_REQUIRE_CUDA=1
export LAPIS_SOURCE_DIR=${LAPIS_SOURCE_DIR:-$PWD}
status=0
: > "$out/tests.log"
for exe in "$build"/tests/*_test_*; do
  [ -x "$exe" ] || continue
  # A hung binary fails instead of eating the whole device call.
  if timeout "${LAPIS_TEST_TIMEOUT:-300}" "$exe" --gtest_brief=1 >> "$out/tests.log" 2>&1; then
    echo "PASS $(basename "$exe")" | tee -a "$out/summary.txt"
  else
    echo "FAIL $(basename "$exe")" | tee -a "$out/summary.txt"
    status=1
  fi
done
grep -h "tests ran\|PASSED\|FAILED" "$out/tests.log" | sort | uniq -c | tee -a "$out/summary.txt"
if [ -x "$build/bin/bench_dense" ]; then
  "$build/bin/bench_dense" --device cuda | tee "$out/bench_dense.md" || status=1
fi
exit $status
