#!/usr/bin/env bash
# Installs what is missing, builds both configurations and runs the whole test suite on each:
#   build/      CUDA auto-detected (CUDA tests skip when no GPU is present;
#               LAPIS_REQUIRE_CUDA=1 makes them fail instead)
#   build-cpu/  -DLAPIS_WITH_CUDA=OFF
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh"

status=0
for config in auto cpu; do
  if [[ $config == cpu ]]; then
    dir="$root/build-cpu"
    "$root/scripts/build.sh" --cpu-only --native-cpu --build-dir "$dir"
  else
    dir="$root/build"
    "$root/scripts/build.sh" --build-dir "$dir"
  fi
  echo "== ctest in $dir"
  if ! ctest --test-dir "$dir" --output-on-failure -j2; then
    echo "run_tests: FAILED in $dir" >&2
    status=1
  fi
done
exit $status
