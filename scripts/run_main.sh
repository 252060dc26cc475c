#!/usr/bin/env bash
# The main job: installs what is missing, builds Lapis (CPU only, so it runs on any machine) and
# trains the Dwivedi & Bresson graph transformer (published ZINC config: L=10, C=64, 8 heads,
# BatchNorm, LapPE k=8, 588,929 parameters) on the ZINC subset shipped in data/zinc, for 3 epochs
# on its first 2,000 training graphs (about a minute on 2 cores), printing loss, MAE, LR and time
# per epoch. Logs, learning curves and checkpoints go to runs/zinc-cpu/.
#
# With arguments, they replace the defaults and go to `lapis train-graph`, e.g.
#   scripts/run_main.sh --dataset zinc --epochs 1000 --out runs/zinc          # full training
#   scripts/run_main.sh --dataset zinc --device cuda --out runs/zinc-gpu      # needs a CUDA build
# LAPIS_BUILD_DIR overrides the build directory (default build-cpu/).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${LAPIS_BUILD_DIR:-$root/build-cpu}
"$root/scripts/setup.sh"
"$root/scripts/build.sh" --cpu-only --native-cpu --build-dir "$build_dir" --target lapis
"$build_dir/bin/lapis" info
if [ $# -gt 0 ]; then
  exec "$build_dir/bin/lapis" train-graph "$@"
fi
exec "$build_dir/bin/lapis" train-graph --dataset zinc --epochs 3 --max-train-graphs 2000 \
  --max-eval-graphs 500 --out "$root/runs/zinc-cpu" --cache-dir "$root/runs/cache"
