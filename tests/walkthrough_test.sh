#!/usr/bin/env bash
# The user guide's "Your own teachers and images" walk-through (docs/user-guide.md), as a PyTorch
# user runs it (issue 16): two teachers trained here with normalisation in their transforms -- a
# grey 28x28 CNN given its conventions on the command line, an RGB 32x32 torchvision resnet18
# with a sidecar -- folders of PNGs, amalgamation, export, one fine-tuning step of the export in
# Python, per-task accuracy.
# The set-up's range, measured (3,000 transfer images, 3 epochs): teachers 86.3 / 92.8, default
# student 68.9 / 85.3, --method kd 37.5 / 84.2 (tops / shoes-and-bags, 1,000 test images).
set -u
AMALGAM=$(realpath "${1:?usage: walkthrough_test.sh path/to/amalgam}")
source "$(dirname "$0")/lib.sh"
FASHION=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
"$PY" "$HERE/fixtures/make_walkthrough.py" "$FASHION" "$W" >"$W/teachers.txt" ||
  { echo "FAIL fixtures make_walkthrough.py"; exit 1; }
cd "$W" || exit 1
cat teachers.txt
GREY="grey.pt:10,channels=1,input-size=28,mean=0.286,std=0.353,task=tops,class-names=tops.txt"

ok "inspect the grey teacher with its options" $AMALGAM inspect "grey.pt,channels=1,input-size=28"
grep -q "^  10 (ReLU)  \[1, 64, 7, 7\]" out && pass "inspect shows the grey layer's shape" ||
  fail "inspect shows the grey layer's shape: $(grep ' 10 ' out)"
ok "amalgamate a grey 28x28 and an RGB 32x32 teacher" $AMALGAM amalgamate --teacher "$GREY" \
  --teacher rgb.pt:layer4 --data transfer --val-data val --epochs 3 --export student.pt --out run
grep -q "predicts class .* check its input normalisation" err &&
  fail "a degenerate-teacher warning for well-normalised teachers: $(grep predicts err)" ||
  pass "no degenerate-teacher warning"
"$PY" -c "
import json
c = json.load(open('run/config.json'))
t = c['networks']['teachers']
assert t[0]['input']['channels'] == 1 and t[0]['input']['height'] == 28, t[0]
assert t[1]['input']['channels'] == 3 and t[1]['input']['height'] == 32, t[1]
# The given decimals as doubles, through JSON (17 digits round-trip): 1e-9 only absorbs a reading.
assert abs(t[0]['input']['mean'][0] - 0.286) < 1e-9 and abs(t[1]['input']['std'][2] - 0.225) < 1e-9
s = c['networks']['student']['input']
assert (s['channels'], s['height'], s['width']) == (3, 32, 32), s" &&
  pass "each teacher keeps its own geometry and normalisation; the student takes the largest" ||
  fail "config.json networks record"
ok "eval on the labeled test folder" $AMALGAM eval --student student.pt \
  --teacher "grey.pt,channels=1,input-size=28,mean=0.286,std=0.353,task=tops,class-names=tops.txt" \
  --teacher rgb.pt --data test --json eval.json
cat out
"$PY" -c "
import json
tasks = {t['name']: t for t in json.load(open('eval.json'))['tasks']}
for name in ('tops', 'shoes-and-bags'):
    teacher, student = tasks[name]['teacher_acc'], tasks[name]['student_acc']
    assert teacher > 0.8 and student > 0.55 and student > teacher - 0.25, (name, teacher, student)" &&
  pass "per-task accuracy: teachers above 80%, the student above 55% and within 25 points" ||
  fail "per-task accuracy out of the set-up's range"
# The same at bf16: both TorchScript teachers (the grey one resized in its forward) run under
# autocast for the cache, whose feature maps are kept in bfloat16; the student matches fp32's.
ok "amalgamate the same teachers at bf16" $AMALGAM amalgamate --teacher "$GREY" \
  --teacher rgb.pt:layer4 --data transfer --val-data val --epochs 3 --precision bf16 --out run16
grep -q "student computes in bf16" err && pass "the bf16 run says so" || fail "bf16 not logged"
ok "eval the bf16 student" $AMALGAM eval --student run16/student.pt \
  --teacher "grey.pt,channels=1,input-size=28,mean=0.286,std=0.353,task=tops,class-names=tops.txt" \
  --teacher rgb.pt --data test --json eval16.json
"$PY" -c "
import json
fp32 = {t['name']: t['student_acc'] for t in json.load(open('eval.json'))['tasks']}
bf16 = {t['name']: t['student_acc'] for t in json.load(open('eval16.json'))['tasks']}
assert json.load(open('run16/config.json'))['options']['train']['precision'] == 'bf16'
for name in fp32:
    assert abs(bf16[name] - fp32[name]) < 0.05, (name, fp32[name], bf16[name])" &&
  pass "bf16 student within 5 points of fp32's on every task" ||
  fail "bf16 student far from fp32's: $(cat eval16.json | head -c 400)"
ok "fine-tune the export one step in Python" "$PY" "$HERE/fixtures/finetune_export.py" student.pt val
cat out
ok "predict one test image with the export" $AMALGAM predict --model student.pt \
  --data "$(find test/Bag -name '*.png' | sort | head -1)" --json one.json
"$PY" -c "
import json
e = json.load(open('one.json'))['images'][0]
assert e['union']['task'] in ('tops', 'shoes-and-bags'), e['union']" &&
  pass "predict gives a union answer" || fail "predict union answer"

summary walkthrough
