#!/usr/bin/env bash
# Configures and builds into build/ (CUDA on when nvcc is found; see README).
# Usage: scripts/build.sh [extra cmake args...]
# env: BUILD_DIR (default build), JOBS, TARGETS (default: everything)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/install_deps.sh
if [ -z "${CUDACXX:-}" ] && ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
# ccache: share hits between clones in different folders (CI clones afresh).
export CCACHE_BASEDIR="$root"
export CCACHE_NOHASHDIR=1
build="${BUILD_DIR:-build}"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCF_WERROR=ON "$@" >/dev/null
targets=()
for t in ${TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build" -j "${JOBS:-$(nproc)}" "${targets[@]}"
