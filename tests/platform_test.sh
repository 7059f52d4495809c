#!/usr/bin/env bash
# Today's PyTorch (fixtures made by the wheel's torch, tests/fixtures/make_platform_models.py):
# the build names LibTorch 2.x with CUDA and links libtorch_cuda; a scripted torchvision ViT
# (scaled_dot_product_attention in its code), a traced EfficientNet and an AOTInductor package
# amalgamate in one run, and the export fine-tunes one step in the wheel's Python; a TorchScript
# file from PyTorch 1.13 still loads; packages that do not fit the convention are refused.
set -u
AMALGAM=$(realpath "${1:?usage: platform_test.sh path/to/amalgam}")
source "$(dirname "$0")/lib.sh"
DATA=$(cd "$HERE/data" && pwd)
make_fixtures make_platform_models.py
cd "$W" || exit 1
A="$AMALGAM --quiet"

ok "--version" "$AMALGAM" --version
grep -Eq "LibTorch 2\.[0-9]+\.[0-9]+, CUDA [0-9]+\.[0-9]+ compiled in" out &&
  pass "--version names LibTorch 2.x and CUDA: $(cat out)" || fail "--version says: $(cat out)"
ldd "$AMALGAM" | grep -q "libtorch_cuda.so => .*site-packages/torch/lib" &&
  pass "the binary links the wheel's libtorch_cuda" || fail "libtorch_cuda not linked"
ldd "$AMALGAM" | grep -q "libcudart.so.* => .*/nvidia/cu[0-9]*/lib/libcudart" &&
  pass "and the wheel's CUDA runtime" || fail "CUDA runtime: $(ldd "$AMALGAM" | grep cudart)"
bad "--device cuda without a GPU is refused" "sees no CUDA device" \
  $A eval --teacher cnn.pt2 --data labeled --device cuda

# AOTInductor packages: what inspect shows, and the convention's refusals.
ok "inspect a package" $A inspect cnn.pt2
grep -q "AOTInductor package, compiled for cpu" out && grep -q "features  nchw -> \[16, 8, 8\]" out &&
  grep -q "output  \[1, 2\]" out && pass "inspect shows its device, features and logits" ||
  fail "inspect: $(cat out)"
ok "inspect a logits-only package" $A inspect logits.pt2
grep -q "features  none" out && pass "inspect says it has no features" || fail "$(cat out)"
TRAIN="--data images --epochs 1 --batch-size 8"
bad "a package with :LAYER" "has no layers to tap; drop ':body'" \
  $A amalgamate --teacher cnn.pt2:body --teacher vit.pt:encoder $TRAIN --out x1
bad "a logits-only package cannot be amalgamated" "returns logits only" \
  $A amalgamate --teacher logits.pt2 --teacher vit.pt:encoder $TRAIN --out x2
bad "a package of a fixed batch size" "answers 32 images with 4 rows: it was compiled for a fixed batch of 4 images" \
  $A amalgamate --teacher fixed.pt2 --teacher vit.pt:encoder $TRAIN --out x3
bad "an exported program that was not compiled" "program.pt2: not a loadable AOTInductor package" \
  $A amalgamate --teacher program.pt2 --teacher vit.pt:encoder $TRAIN --out x4
bad "a package as the student" "can be a teacher but not a student" \
  $A amalgamate --teacher cnn.pt2 --student cnn.pt2 $TRAIN --out x5
absent "nothing written after the refusals" x1 x2 x3 x4 x5
ok "a logits-only package can be scored" $A eval --teacher logits.pt2 --data labeled

# The package's logits are the module's own (amalgam normalises as the sidecar says).
ok "the package is scored" $A eval --teacher cnn.pt2 --data labeled --json aoti.json
ok "its TorchScript twin is scored" $A eval --teacher cnn_ts.pt --data labeled --json ts.json
if "$PY" - aoti.json ts.json <<'PY'; then pass "same accuracy both ways"; else fail "scores differ"; fi
import json, sys
a, b = (json.load(open(p))["tasks"][0]["teacher_acc"] for p in sys.argv[1:3])
assert a == b, (a, b)
PY

# One run with all three kinds, the export fine-tuned in the wheel's Python.
ok "ViT (scripted) + EfficientNet (traced) + AOTInductor amalgamate in one run" \
  $A amalgamate --teacher vit.pt:encoder --teacher effnet.pt:features --teacher cnn.pt2 \
  --data images --epochs 2 --batch-size 16 --out run --export run/student_ts.pt
recorded() {
  if "$PY" - run/config.json <<'PY'; then pass "$1"; else fail "$1: $(head -c 300 run/config.json)"; fi
import json, sys
t = json.load(open(sys.argv[1]))["networks"]["teachers"]
assert [x["layout"] for x in t] == ["tokens+cls", "nchw", "nchw"], t
assert [x["feature_shape"] for x in t] == [[32, 4, 4], [96, 8, 8], [16, 8, 8]], t
assert t[2]["format"] == "aoti" and t[2]["package_device"] == "cpu", t[2]
PY
}
recorded "config.json records each teacher's format and layout"
ok "the export fine-tunes one step in the wheel's torch" "$PY" "$HERE/fixtures/finetune_export.py" \
  run/student_ts.pt labeled
ok "the student answers all three tasks" $A eval --student run/student.pt --teacher vit.pt:encoder \
  --teacher effnet.pt:features --teacher cnn.pt2 --data labeled --json eval.json
if "$PY" - eval.json <<'PY'; then pass "eval scores the three tasks"; else fail "eval tasks"; fi
import json, sys
j = json.load(open(sys.argv[1]))
assert [t["name"] for t in j["tasks"]] == ["shapes", "fruit", "weather"], j["tasks"]
PY

# A TorchScript file written by PyTorch 1.13 (tests/data/make_legacy_torch113.py).
cp "$DATA/legacy_torch113.pt" "$DATA/legacy_torch113.json" .
ok "a PyTorch 1.13 TorchScript file loads" $A inspect legacy_torch113.pt
grep -q "body (.*)  \[1, 8, 8, 8\]" out && pass "and its layers can be tapped" ||
  fail "inspect: $(cat out)"
ok "and amalgamates beside a 2.x teacher" $A amalgamate --teacher legacy_torch113.pt:body@nchw \
  --teacher cnn.pt2 $TRAIN --out legacy
if "$PY" - "$DATA/legacy_torch113.pt" "$DATA/legacy_torch113.expected.json" <<'PY'; then
import json, sys, torch
model = torch.jit.load(sys.argv[1])
x = torch.linspace(0, 1, 2 * 3 * 32 * 32).view(2, 3, 32, 32)
want = torch.tensor(json.load(open(sys.argv[2]))["logits"])
# Other kernels, another machine: its 28-, 73-, 64- and 9-term float32 sums in another order (n*u
# of their terms), the ramp's and BatchNorm's roundings, carried through |W| in float64: <= 2.22e-5.
assert torch.allclose(model(x), want, rtol=0, atol=2.3e-5), (model(x), want)
PY
  pass "today's torch gives the logits 1.13 gave"
else
  fail "1.13 logits differ"
fi

# The GPU check runs here as a dry run: every step planned, nothing built.
ok "bench/gpu_check.sh --dry-run" env OUT="$W/gpu" bash "$(dirname "$HERE")/bench/gpu_check.sh" --dry-run
for step in configure build version demo_fp32 demo_bf16 nccl_2ranks; do
  grep -q "^gpu_check: $step: " out || { fail "the dry run plans $step"; continue; }
  pass "the dry run plans $step"
done
grep -q -- "--device cuda --data .* --precision bf16" out && pass "the bf16 demo runs on CUDA" ||
  fail "bf16 demo step: $(grep demo_bf16 out)"
absent "a dry run builds nothing" "$(dirname "$HERE")/build-gpu"
bad_rc=0
bash "$(dirname "$HERE")/bench/gpu_check.sh" --bogus >/dev/null 2>"$W/err" || bad_rc=$?
[ $bad_rc -eq 2 ] && grep -q "unknown option --bogus" "$W/err" && pass "an unknown option is refused" ||
  fail "unknown option: exit $bad_rc"

summary platform
