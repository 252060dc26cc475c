#!/usr/bin/env bash
# Installs the Debian packages Lapis needs to build and test. Idempotent: apt-get runs only when
# a package is missing, so a second run takes well under a second. Uses sudo only when not root.
# CUDA is optional: the build uses it when /usr/local/cuda/bin/nvcc exists (see README.md).
set -euo pipefail

packages=(
  build-essential cmake ninja-build
  libeigen3-dev libgtest-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev zlib1g-dev
  # later parts: sparse eigensolvers (LapPE), graph algorithms (MST orientation), KD-trees (kNN)
  libspectra-dev libboost-graph-dev libnanoflann-dev
  # PCL interop (lapis::pcl) and PCD IO; PCL's CMake config pulls VTK, which needs MPI (big, but
  # CI builds lapis::pcl)
  libpcl-dev libopenmpi-dev
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
else
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then
    sudo_cmd=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [[ -x /usr/local/cuda/bin/nvcc ]]; then
  echo "setup: CUDA compiler found at /usr/local/cuda/bin/nvcc"
else
  echo "setup: no CUDA compiler at /usr/local/cuda/bin/nvcc; builds will be CPU only"
fi
