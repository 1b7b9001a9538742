#!/usr/bin/env bash
# OpenBLAS against libxsmm on the attention's small products (README: Benchmark). Installs
# libxsmm-dev (Debian) if missing; builds into a temporary directory; 1 thread.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if ! pkg-config --exists libxsmm; then
  sudo=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
  $sudo apt-get update -q && $sudo apt-get install -y -q libxsmm-dev libopenblas-dev
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cc -O2 -o "$out/small_products" "$here/small_products.c" $(pkg-config --cflags --libs libxsmm) -lopenblas -lm
OPENBLAS_NUM_THREADS=1 "$out/small_products" "$@"
