#!/usr/bin/env bash
# The test suite: installs what is missing, builds everything (CUDA code is
# compiled and linked when nvcc is present) and runs every test with CTest.
# Tests labelled `gpu` skip, with the reason, on a machine without a GPU.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/build.sh
build="${BUILD_DIR:-build}"
ctest --test-dir "$build" --output-on-failure -j "${JOBS:-$(nproc)}" "$@"
