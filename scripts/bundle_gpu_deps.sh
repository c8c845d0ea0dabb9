#!/usr/bin/env bash
# Copies the Debian -dev packages the build needs (abseil, GoogleTest, Google
# Benchmark, CLI11: headers, libraries, CMake configs) into .deps/prefix, keeping the
# /usr layout so their CMake configs stay valid. The GPU machine has no Debian
# -dev packages; scripts/gpu_check.sh builds against this folder (carry it).
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
