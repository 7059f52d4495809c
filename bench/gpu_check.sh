#!/usr/bin/env bash
# The GPU check, in one go on a machine with an NVIDIA GPU and pip PyTorch 2.x (whose LibTorch is
# the one amalgam builds against): builds amalgam there, runs the quick demo with --device cuda
# at fp32 and at bf16, a data-parallel amalgamation over NCCL when there are two GPUs, and writes
# one JSON ($OUT/gpu_check.json). Prepared to finish in under 8 minutes on 16 cores.
#
# usage: bench/gpu_check.sh [--dry-run] [--prepare]
#   --prepare  here (Debian, after scripts/setup.sh): copy what the GPU machine lacks into
#              .devdeps/ (CLI11, nlohmann-json, stb and zlib headers and libraries, Fashion-MNIST),
#              to be carried there with the working tree
#   --dry-run  check the inputs and print each step without building or running anything
# environment: OUT (default /tmp/amalgam-gpu), DEPS (default .devdeps), PYTHON (default python3)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DEPS=${DEPS:-$ROOT/.devdeps}
OUT=${OUT:-/tmp/amalgam-gpu}
PYTHON=${PYTHON:-python3}
DRY=0
case "${1:-}" in
  --dry-run) DRY=1 ;;
  --prepare)
    mkdir -p "$DEPS/prefix/include" "$DEPS/prefix/lib" "$DEPS/fashion"
    cp -r /usr/include/CLI /usr/include/nlohmann /usr/include/stb /usr/include/zlib.h \
      /usr/include/zconf.h "$DEPS/prefix/include/"
    cp -r /usr/share/cmake/CLI11 /usr/share/cmake/nlohmann_json "$DEPS/prefix/lib/" 2>/dev/null ||
      cp -r /usr/lib/cmake/CLI11 /usr/share/cmake/nlohmann_json "$DEPS/prefix/lib/"
    cp -L /usr/lib/x86_64-linux-gnu/libstb.so /usr/lib/x86_64-linux-gnu/libz.so "$DEPS/prefix/lib/"
    cp /usr/share/datasets/fashion-mnist/* "$DEPS/fashion/"
    echo "gpu_check: prepared $DEPS ($(du -sh "$DEPS" | cut -f1)); carry it to the GPU machine"
    exit 0 ;;
  "") ;;
  *) echo "gpu_check: unknown option $1 (expected --dry-run or --prepare)" >&2; exit 2 ;;
esac

step() {  # step NAME CMD...: runs (or, dry, prints) one step; its output in $OUT/NAME.log
  local name=$1; shift
  echo "gpu_check: $name: $*"
  [ "$DRY" = 1 ] && return 0
  "$@" >"$OUT/$name.log" 2>&1 || { echo "gpu_check: $name failed:"; tail -20 "$OUT/$name.log"; exit 1; }
}

for need in "$DEPS/prefix/include/CLI/CLI.hpp" "$DEPS/prefix/lib/libstb.so" \
            "$DEPS/fashion/train-images-idx3-ubyte.gz"; do
  [ -e "$need" ] || [ "$DRY" = 1 ] || {
    echo "gpu_check: $need is missing: run bench/gpu_check.sh --prepare here first" >&2; exit 1; }
done
mkdir -p "$OUT"
if [ "$DRY" = 1 ]; then
  TORCH_PREFIX="<torch.utils.cmake_prefix_path>" GPUS=2
else
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
                "gpus", torch.cuda.device_count())' | tee "$OUT/torch.txt"
  TORCH_PREFIX=$("$PYTHON" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
  GPUS=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())')
fi
step configure cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DAMALGAM_TESTS=OFF \
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$DEPS/prefix" -DZLIB_INCLUDE_DIR="$DEPS/prefix/include" \
  -DZLIB_LIBRARY="$DEPS/prefix/lib/libz.so" -DTORCH_CUDA_ARCH_LIST=9.0
step build cmake --build build-gpu -j"$(nproc)"
[ "$DRY" = 1 ] || echo "gpu_check: compiler warnings: $(grep -c "warning:" "$OUT/build.log" || true)"
step version build-gpu/amalgam --version
DEMO=(build-gpu/amalgam demo --quick --device cuda --data "$DEPS/fashion")
step demo_fp32 "${DEMO[@]}" --precision fp32 --out /tmp/gpu-demo-fp32 --json "$OUT/demo_fp32.json"
step demo_bf16 "${DEMO[@]}" --precision bf16 --out /tmp/gpu-demo-bf16 --json "$OUT/demo_bf16.json"
if [ "$GPUS" -ge 2 ]; then
  step nccl_2ranks build-gpu/amalgam amalgamate --teacher /tmp/gpu-demo-fp32/teachers/A.pt \
    --teacher /tmp/gpu-demo-fp32/teachers/B.pt --data "$DEPS/fashion" --limit 6000 --epochs 1 \
    --device cuda --nproc 2 --out /tmp/gpu-nccl
fi
[ "$DRY" = 1 ] && { echo "gpu_check: dry run: would write $OUT/gpu_check.json"; exit 0; }
"$PYTHON" - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
result = {"torch": open(f"{out}/torch.txt").read().strip(),
          "version": open(f"{out}/version.log").read().strip(),
          "warnings": sum("warning:" in l for l in open(f"{out}/build.log"))}
for p in ("fp32", "bf16"):
    result[f"demo_{p}"] = json.load(open(f"{out}/demo_{p}.json"))
result["nccl_2ranks"] = os.path.exists(f"{out}/nccl_2ranks.log")
json.dump(result, open(f"{out}/gpu_check.json", "w"), indent=2)
print(f"gpu_check: wrote {out}/gpu_check.json")
PY
