#!/usr/bin/env bash
# Configures (Ninja, Release) and builds Lapis.
#   scripts/build.sh [--cpu-only] [--native-cpu] [--build-dir DIR] [--target T]... [-D...]
# Default build directory: build/ (build-cpu/ with --cpu-only). CUDA is auto-detected unless
# --cpu-only is given (-DLAPIS_WITH_CUDA=OFF). --native-cpu builds the CPU kernels for this
# machine (-DLAPIS_CPU_ARCH=native; the binaries may not run on other CPUs). Builds everything
# unless targets are named.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cpu_only=0
cpu_arch=()
build_dir=""
extra=()
targets=()
while (($#)); do
  case "$1" in
    --cpu-only) cpu_only=1 ;;
    --native-cpu) cpu_arch=(-DLAPIS_CPU_ARCH=native) ;;
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
      sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
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
  "${cpu_arch[@]}" "${extra[@]}"
cmake --build "$build_dir" -j"$(nproc)" "${targets[@]}"
