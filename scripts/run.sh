#!/usr/bin/env bash
# The main job on its built-in default: builds, prints the runtime's view of
# the machine, then the paper's Table 1 self-attention FLOPs computed from
# real graphs (apps/cf_flops).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
TARGETS="cf_info cf_flops" scripts/build.sh
build="${BUILD_DIR:-build}"
"$build/apps/cf_info"
if [ -x "$build/apps/cf_flops" ]; then
  echo
  "$build/apps/cf_flops" "$@"
fi
