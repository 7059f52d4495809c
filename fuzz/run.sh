#!/usr/bin/env bash
# Builds the libFuzzer targets with Debian's clang (ASan + UBSan) and runs each for a bounded
# time from a small seed corpus made here. Crashes land in build-fuzz/crashes/<target>/.
#
# usage: fuzz/run.sh [SECONDS_PER_TARGET]   (default 60)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_EACH=${1:-60}
OUT="$ROOT/build-fuzz"
mkdir -p "$OUT"
FLAGS=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$ROOT/src" -I/usr/include/torch/csrc/api/include -I/usr/include/stb)
LIBS=(-ltorch -ltorch_cpu -lc10 -lz -lstb -lpthread)
CORE=("$ROOT/src/core/error.cpp" "$ROOT/src/core/atomic_file.cpp" "$ROOT/src/core/log.cpp")
build() {  # build TARGET SOURCES...
  local target=$1; shift
  if [ ! -x "$OUT/$target" ] || [ -n "$(find "$ROOT/src" "$ROOT/fuzz" -newer "$OUT/$target" -name '*.[ch]*' | head -1)" ]; then
    echo "building $target"
    clang++ "${FLAGS[@]}" "$@" "${CORE[@]}" "${LIBS[@]}" -o "$OUT/$target"
  fi
}
build fuzz_idx "$ROOT/fuzz/fuzz_idx.cpp" "$ROOT/src/data/idx.cpp"
build fuzz_image "$ROOT/fuzz/fuzz_image.cpp" "$ROOT/src/data/image_folder.cpp"

# Seeds: small valid files of every kind the targets read.
SEEDS="$OUT/seeds"
rm -rf "$SEEDS" && mkdir -p "$SEEDS/idx" "$SEEDS/image"
/usr/bin/python3 - "$SEEDS" <<'PY'
import gzip, io, struct, sys
import numpy as np
from PIL import Image
out = sys.argv[1]
rng = np.random.default_rng(0)
data = rng.integers(0, 256, (3, 4, 5), dtype=np.uint8)
idx = struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">III", 3, 4, 5) + data.tobytes()
open(f"{out}/idx/plain", "wb").write(idx)
open(f"{out}/idx/gz", "wb").write(gzip.compress(idx))
labels = struct.pack(">BBBB", 0, 0, 8, 1) + struct.pack(">I", 6) + bytes(range(6))
open(f"{out}/idx/labels", "wb").write(labels)
for mode, shape in [("L", (5, 7)), ("RGB", (6, 4, 3)), ("RGBA", (3, 3, 4))]:
    img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
    for fmt in ["PNG", "BMP", "GIF", "TGA", "JPEG", "PPM"]:
        if fmt in ("JPEG", "PPM") and mode == "RGBA":
            continue
        b = io.BytesIO()
        img.save(b, fmt)
        open(f"{out}/image/{mode}.{fmt.lower()}", "wb").write(b.getvalue())
PY

status=0
for target in fuzz_idx fuzz_image; do
  corpus="$OUT/corpus/$target" crashes="$OUT/crashes/$target"
  mkdir -p "$corpus" "$crashes"
  kind=${target#fuzz_}
  echo "== $target for ${SECONDS_EACH}s"
  if ! "$OUT/$target" "$corpus" "$SEEDS/$kind" -max_total_time="$SECONDS_EACH" \
       -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -print_final_stats=1 \
       -artifact_prefix="$crashes/" 2>"$OUT/$target.log"; then
    status=1
    echo "$target: found a failure, input in $crashes/"
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|Done|SUMMARY|ERROR" "$OUT/$target.log" | tail -5
done
exit $status
