#!/usr/bin/env bash
# The main job: installs what is missing, builds Lapis (CPU only, so it runs on any machine) and
# trains a small MLP on the embedded UCI digits data, printing loss and accuracy per epoch.
# Extra arguments go to `lapis train-mlp` (e.g. --epochs 10 --hidden 128).
# LAPIS_BUILD_DIR overrides the build directory (default build-cpu/).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${LAPIS_BUILD_DIR:-$root/build-cpu}
"$root/scripts/setup.sh"
"$root/scripts/build.sh" --cpu-only --build-dir "$build_dir" --target lapis
"$build_dir/bin/lapis" info
exec "$build_dir/bin/lapis" train-mlp "$@"
