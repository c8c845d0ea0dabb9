#!/usr/bin/env bash
# Copies the Debian -dev packages the build needs (abseil, GoogleTest, Google
# Benchmark, CLI11: headers, libraries, CMake configs) into .deps/prefix, keeping the
# /usr layout so their CMake configs stay valid. The GPU machine has no Debian
# -dev packages; scripts/gpu_check.sh builds against this folder (carry it).
# Also downloads into .deps/wheels the pure-Python wheels the GPU machine's
# Python lacks for bench/torch/latency_gpu.py's diffusers UNet step: diffusers
# and importlib_metadata (its other needs, huggingface-hub >= 1.32, safetensors
# >= 0.8, regex, requests, Pillow, filelock, zipp, are in that image:
# /work/.library/device/KINDS.md). gpu_check.sh installs them offline.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/install_deps.sh
prefix=.deps/prefix
rm -rf "$prefix.tmp"
mkdir -p "$prefix.tmp"
pkgs=$(dpkg-query -W -f='${Package}\n' | grep -E '^(libabsl|libgtest-dev|libgmock-dev|libbenchmark|libcli11-dev|nlohmann-json3-dev)' )
for p in $pkgs; do
  dpkg -L "$p" | while read -r f; do
    case "$f" in
      /usr/include/*|/usr/lib/*|/usr/share/cmake/*) ;;
      *) continue ;;
    esac
    [ -f "$f" ] || continue
    rel="${f#/usr/}"
    mkdir -p "$prefix.tmp/$(dirname "$rel")"
    cp -L "$f" "$prefix.tmp/$rel"
  done
done
rm -rf "$prefix"
mv "$prefix.tmp" "$prefix"
du -sh "$prefix"

# Pure-Python wheels (py3-none-any), pinned so the run is repeatable. A failed
# download leaves no folder: the GPU check then skips the UNet step.
wheels=.deps/wheels
rm -rf "$wheels" "$wheels.tmp"
if python3 -m pip download -q --no-deps --only-binary=:all: -d "$wheels.tmp" \
    diffusers==0.42.1 importlib_metadata==10.2.0; then
  mv "$wheels.tmp" "$wheels"
  du -sh "$wheels"
else
  rm -rf "$wheels.tmp"
  echo "bundle_gpu_deps: wheel download failed; the GPU check will skip the diffusers UNet step" >&2
fi
