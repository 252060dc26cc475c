#!/usr/bin/env bash
# Configures (Ninja, Release) and builds Lapis.
#   scripts/build.sh [--cpu-only] [--build-dir DIR] [--target T]... [extra cmake -D options...]
# Default build directory: build/ (build-cpu/ with --cpu-only). CUDA is auto-detected unless
# --cpu-only is given (-DLAPIS_WITH_CUDA=OFF). Builds everything unless targets are named.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cpu_only=0
build_dir=""
extra=()
targets=()
while (($#)); do
  case "$1" in
    --cpu-only) cpu_only=1 ;;
    --build-dir)
      [[ $# -ge 2 ]] || { echo "build.sh: --build-dir needs a directory" >&2; exit 2; }
      build_dir=$2
      shift ;;
    --build-dir=*) build_dir=${1#--build-dir=} ;;
    --target)
      [[ $# -ge 2 ]] || { echo "build.sh: --target needs a target name" >&2; exit 2; }
      targets+=(--target "$2")
      shift ;;
    -h|--help)
      sed -n '2,5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0 ;;
    -D*) extra+=("$1") ;;
    *) echo "build.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done

if [[ -z "$build_dir" ]]; then
  if ((cpu_only)); then build_dir="$root/build-cpu"; else build_dir="$root/build"; fi
fi
cuda_opt=()
if ((cpu_only)); then cuda_opt=(-DLAPIS_WITH_CUDA=OFF); fi

cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "${cuda_opt[@]}" \
  "${extra[@]}"
cmake --build "$build_dir" -j"$(nproc)" "${targets[@]}"
