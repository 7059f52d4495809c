#!/usr/bin/env bash
# GPU check for a machine with pip PyTorch 2.x (its bundled LibTorch carries CUDA): builds
# amalgam against that LibTorch and runs the quick demo with --device cuda.
# DEPS names a folder with headers/CMake configs of CLI11, nlohmann-json and zlib under prefix/
# and the Fashion-MNIST files under fashion/ (for machines without Debian's packages).
set -euo pipefail
cd "$(dirname "$0")/.."
DEPS=${DEPS:-$PWD/.devdeps}
OUT=${OUT:-/tmp/amalgam-gpu}
mkdir -p "$OUT"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'
TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
configure() {
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DAMALGAM_TESTS=OFF \
    -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$DEPS/prefix" -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DZLIB_INCLUDE_DIR="$DEPS/prefix/include" -DZLIB_LIBRARY="$DEPS/prefix/lib/libz.so" "$@"
}
configure >"$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
if ! cmake --build build-gpu -j"$(nproc)" >"$OUT/build.log" 2>&1; then
  grep -m 20 -E "error" "$OUT/build.log" || tail -30 "$OUT/build.log"
  exit 1
fi
echo "compiler warnings: $(grep -c -E "warning:" "$OUT/build.log" || true)"
build-gpu/amalgam demo --quick --device cuda --data "$DEPS/fashion" --out /tmp/gpu-demo \
  --json "$OUT/gpu_quick.json"
