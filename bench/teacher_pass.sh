#!/usr/bin/env bash
# A teacher pass through AOTInductor against the same network as TorchScript: a torchvision
# resnet18 (random weights, 10 classes, 64x64 RGB) saved both ways by the wheel's torch, scored
# by `amalgam eval` on the same 2,048 images (decoding and scoring are the same work for both).
# Prints the best of REPEATS wall times of each and writes them as JSON.
#
# usage: bench/teacher_pass.sh [--json FILE] [--repeats N] [--threads T]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
AMALGAM=${AMALGAM:-$ROOT/build/amalgam}
JSON="" REPEATS=3 THREADS=0
while [ $# -gt 0 ]; do
  case "$1" in
    --json) JSON=$2; shift 2 ;;
    --repeats) REPEATS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    *) echo "bench/teacher_pass.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$PY" -W ignore - "$T" <<'PY'
import json, os, sys, time
import numpy as np, torch, torchvision
from PIL import Image
out = sys.argv[1]
torch.manual_seed(0)
net = torchvision.models.resnet18(num_classes=10).eval()
class Both(torch.nn.Module):  # (features, logits): the AOTInductor teacher convention
    def __init__(self, n):
        super().__init__(); self.n = n
    def forward(self, x):
        n = self.n
        f = n.layer4(n.layer3(n.layer2(n.layer1(n.maxpool(n.relu(n.bn1(n.conv1(x))))))))
        return f, n.fc(torch.flatten(n.avgpool(f), 1))
x = torch.rand(8, 3, 64, 64)
torch.jit.trace(net, x).save(f"{out}/r18.pt")
start = time.time()
batch = torch.export.Dim("batch", min=1, max=4096)
program = torch.export.export(Both(net), (x,), dynamic_shapes=({0: batch},))
torch._inductor.aoti_compile_and_package(program, package_path=f"{out}/r18.pt2")
print(f"aoti_compile_and_package: {time.time() - start:.1f} s", file=sys.stderr)
names = [f"c{i}" for i in range(10)]
json.dump({"task": "r18", "class_names": names, "input_size": [64, 64], "channels": 3},
          open(f"{out}/r18.json", "w"))
rng = np.random.default_rng(0)
for i in range(2048):
    d = f"{out}/images/c{i % 10}"
    os.makedirs(d, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(f"{d}/{i}.png")
PY
best() {  # best REF: the fastest of REPEATS `amalgam eval` runs with teacher REF, in seconds
  local ref=$1 times=""
  for _ in $(seq "$REPEATS"); do
    TIMEFORMAT=%R
    times+=" $({ time "$AMALGAM" --quiet eval --teacher "$ref" --data "$T/images" \
      --threads "$THREADS" >/dev/null; } 2>&1)"
  done
  echo "$times" | awk '{m = $1; for (i = 2; i <= NF; i++) if ($i < m) m = $i; print m}'
}
TS=$(best "$T/r18.pt:layer4")
AOTI=$(best "$T/r18.pt2")
echo "teacher pass, resnet18 at 64x64, 2,048 images, best of $REPEATS: TorchScript ${TS} s, AOTInductor ${AOTI} s"
[ -z "$JSON" ] || printf '{"images": 2048, "model": "resnet18 64x64", "repeats": %s, "torchscript_s": %s, "aoti_s": %s}\n' \
  "$REPEATS" "$TS" "$AOTI" >"$JSON"
