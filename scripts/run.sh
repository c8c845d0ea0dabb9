#!/usr/bin/env bash
# The main job: builds convfusion-bench (and cf_info), prints the runtime's
# view of the machine, then writes the paper's tables as this runtime counts
# and measures them into a results folder (docs/results.md explains them):
#   table1   FLOPs of the highest-resolution attention module, SD1.5 and PixArt, 512 to 16K, beside the paper's
#   memory   planned memory of a denoiser step and of a distillation training step, 512 and 1024
#   model    whole-denoiser FLOPs by module type, parameters, planned memory, 512 and 1024
#   latency  one module at SD1.5's top level at 512 on the CPU (median of 5 runs), ratios to self-attention
# No weights are needed (shape-only graphs; random weights for the timings).
# Usage: scripts/run.sh [RESULTS_DIR]   (default results/bench; env BUILD_DIR, default build)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
TARGETS="cf_info convfusion_bench" scripts/build.sh
build="${BUILD_DIR:-build}"
out="${1:-results/bench}"
bench="$build/apps/convfusion-bench"
start=$(date +%s)
"$build/apps/cf_info"
echo
"$bench" table1 --model=sd15,pixart --out="$out"
"$bench" memory --model=sd15,pixart --method=all --resolution=512,1024 --out="$out"
"$bench" model --model=sd15,pixart --method=all --resolution=512,1024 --out="$out"
"$bench" latency --device=cpu --model=sd15 --resolution=512 --out="$out"
echo
# The headline figures (the paper: 6929x and 5.42x at 16K).
awk -F, 'NR > 1 && $1 == "sd15" && $3 == "16K" { g[$2] = $7 }
  END { printf "SD1.5 16K, highest-resolution module: self-attention / ConvBlock = %.0fx (paper 6929x), " \
               "LinFusion / ConvBlock = %.2fx (paper 5.42x)\n", g["self_attention"] / g["convblock"],
               g["linfusion"] / g["convblock"] }' "$out/table1.csv"
echo
cat "$out/latency.md"
echo
echo "Results ($(($(date +%s) - start)) s): $out/ (table1, memory, model, latency as .md, .csv, .json; plots as .svg)"
