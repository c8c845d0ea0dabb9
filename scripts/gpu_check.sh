#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA H100/H200, the CUDA toolkit, CMake,
# ninja and Python with PyTorch (no Debian -dev packages, no network), builds
# the project against .deps/prefix (made by scripts/bundle_gpu_deps.sh and
# carried along), runs every `gpu`-labelled test and the CUDA microbenchmarks,
# times the same shapes in PyTorch, and writes logs plus summary.json into the
# results folder (argument 1, else $OUT, else ./results). Prints a table last.
# The results folder gets at most 8 files (the device tool brings back 8):
# gpu.txt, build.log, gpu_tests.log, bench.json, bench.log, torch_baseline.json,
# summary.json, summary.txt.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
results="${1:-${OUT:-$root/results}}"
mkdir -p "$results"
t0=$(date +%s)
log() { echo "[gpu_check $(( $(date +%s) - t0 ))s] $*"; }

export PATH="/usr/local/cuda/bin:$PATH"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv >"$results/gpu.txt" 2>&1
cat "$results/gpu.txt"

# cuDNN: the toolkit's, else the one in PyTorch's wheel.
cudnn_root=""
if [ ! -f /usr/local/cuda/include/cudnn.h ]; then
  cudnn_root=$(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__) if nvidia.cudnn.__file__ else list(nvidia.cudnn.__path__)[0])' 2>/dev/null || true)
  log "cuDNN from $cudnn_root"
  export LD_LIBRARY_PATH="$cudnn_root/lib:${LD_LIBRARY_PATH:-}"
fi
prefix="$root/.deps/prefix"
if [ ! -d "$prefix" ]; then
  echo "gpu_check: $prefix is missing: run scripts/bundle_gpu_deps.sh on the build machine and carry .deps" >&2
  exit 2
fi
export LD_LIBRARY_PATH="$prefix/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"

build="$root/build-gpu"
log "configure"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCF_CUDA=ON \
  -DCMAKE_PREFIX_PATH="$prefix" ${cudnn_root:+-DCUDNN_ROOT="$cudnn_root"} >"$results/build.log" 2>&1 \
  || { tail -30 "$results/build.log"; exit 3; }
log "build"
cmake --build "$build" -j "$(nproc)" >>"$results/build.log" 2>&1 || { grep -E "error|FAILED" "$results/build.log" | head -40; exit 4; }

log "gpu tests"
# Here a skipped gpu test is a failure (a driver mismatch must not pass as
# "no GPU"): CF_REQUIRE_GPU turns CF_SKIP_WITHOUT_GPU into a test failure, and
# any skip that remains is counted and fails the check.
CF_REQUIRE_GPU=1 ctest --test-dir "$build" -L gpu --no-tests=error --output-on-failure -j 4 \
  >"$results/gpu_tests.log" 2>&1
test_rc=$?
tail -5 "$results/gpu_tests.log"
skipped=$(grep -c -E '\*\*\*Skipped|\(Skipped\)' "$results/gpu_tests.log")
ran=$(grep -c -E '^ *[0-9]+/[0-9]+ Test +#' "$results/gpu_tests.log")
log "gpu tests: $ran run, $skipped skipped"
echo "gpu_check: $ran gpu tests run, $skipped skipped" >>"$results/gpu_tests.log"
if [ "$skipped" -gt 0 ] || [ "$ran" -eq 0 ]; then
  log "FAIL: gpu tests must run here, none may skip"
  [ "$test_rc" -eq 0 ] && test_rc=5
fi

log "benchmarks"
work="$build/gpu_check_work"
rm -rf "$work" && mkdir -p "$work"
: >"$results/bench.log"
for b in "$build"/bench/*_bench; do
  [ -x "$b" ] || continue
  name=$(basename "$b")
  echo "=== $name" >>"$results/bench.log"
  timeout 120 "$b" --benchmark_filter='[Cc][Uu][Dd][Aa]|[Gg][Pp][Uu]' --benchmark_min_time=0.1 \
    --benchmark_out="$work/$name.json" --benchmark_out_format=json >>"$results/bench.log" 2>&1 \
    || log "$name exited $?"
done

log "pytorch baseline"
timeout 120 python3 scripts/torch_baseline.py "$results/torch_baseline.json" >>"$results/bench.log" 2>&1 \
  || log "torch baseline failed (see bench.log)"
# Adds the cases of another baseline file ($1) to torch_baseline.json.
merge_cases() {
  python3 - "$results/torch_baseline.json" "$1" <<'PY'
import json, os, sys
base, extra = sys.argv[1], sys.argv[2]
b = json.load(open(base)) if os.path.exists(base) else {"cases": {}}
b["cases"].update(json.load(open(extra))["cases"])
json.dump(b, open(base + ".tmp", "w"), indent=1)
os.replace(base + ".tmp", base)
PY
}
# flex_attention compiles with Triton first; its cases join torch_baseline.json.
timeout 240 python3 scripts/torch_flex_na.py "$work/flex_na.json" >>"$results/bench.log" 2>&1 \
  && merge_cases "$work/flex_na.json" || log "flex_attention baseline failed (see bench.log)"
# The authors' eager ConvBlock (f16, NCHW and channels-last) at convblock_gpu_bench's shapes.
# It writes its file after every shape, so a run cut by the time limit keeps what it measured.
timeout 150 python3 scripts/torch_baseline.py --convblock "$work/torch_convblock.json" >>"$results/bench.log" 2>&1 \
  || log "ConvBlock baseline failed or timed out (see bench.log)"
[ -f "$work/torch_convblock.json" ] && merge_cases "$work/torch_convblock.json"

log "summary"
python3 scripts/gpu_summary.py "$results" "$work" | tee "$results/summary.txt"
log "done (gpu tests rc=$test_rc)"
exit $test_rc
