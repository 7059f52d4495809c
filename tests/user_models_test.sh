#!/usr/bin/env bash
# A user's models and data: torchvision networks saved with torch.jit.save (one scripted, one
# traced) as teachers, folders of PNG/JPEG files as data, the documented command, and the
# exported student loaded back in Python. Fixtures are made here by the wheel's torch.
set -u
AMALGAM=$(realpath "${1:?usage: user_models_test.sh path/to/amalgam}")
source "$(dirname "$0")/lib.sh"
make_fixtures make_user_models.py
cd "$W" || exit 1
A="$AMALGAM --quiet"

# Choosing LAYER.
ok "inspect scripted resnet18" $A inspect a.pt --input-size 32
grep -q "layer4 (Sequential)  \[1, 512, 1, 1\]" out && pass "inspect shows layer4's shape" ||
  fail "inspect shows layer4's shape"
ok "inspect traced mobilenet_v2" $A inspect b.pt --input-size 32
grep -q "features.7 (InvertedResidual)  \[1, 64, 2, 2\]" out && pass "inspect shows nested shape" ||
  fail "inspect shows nested shape"

# The documented command (b.pt has no sidecar: --input-size supplies its input size).
ok "documented command" $AMALGAM amalgamate --teacher a.pt:layer4 --teacher b.pt:features \
  --data images/ --student resnet --epochs 2 --export student.pt --input-size 32
exists "export and sidecar" student.pt student.json
ls runs/amalgamate-*/student.pt >/dev/null 2>&1 && pass "default run directory under runs/" ||
  fail "default run directory under runs/"
grep -q '"class_names"' student.json && grep -q '"bird"' student.json &&
  pass "export sidecar carries the head's class names" || fail "export sidecar class names"

# A user's sidecar: unknown keys named with the key meant, wrong types named by key, a single
# mean/std for every channel.
cp a.pt side.pt
printf '{"input_size": 32, "mena": [0.5, 0.5, 0.5]}' >side.json
bad "a misspelt sidecar key" 'side.json: unknown key "mena"; did you mean mean?' $A inspect side.pt
printf '{"input_size": "32"}' >side.json
bad "a sidecar value of the wrong type" 'side.json: "input_size" must be N or [H, W]' $A inspect side.pt
printf '{"input_size": 32, "mean": 0.286, "std": 0.353}' >side.json
ok "one mean and std for every channel" $A inspect side.pt

# Options attached to one teacher (PATH:LAYER,KEY=VALUE...) win over its sidecar; a global option
# a sidecar overrides is named, never dropped silently.
ok "conventions and class names attached to a teacher" $A amalgamate --teacher a.pt:layer4 \
  --teacher "b.pt:features,input-size=32,mean=0.5,std=0.25,task=shapes,class-names=w,x,y,z" \
  --data images --epochs 1 --limit 10 --out opts
"$PY" -c "
import json
c = json.load(open('opts/config.json'))
b = c['networks']['teachers'][1]['input']
assert b['mean'] == [0.5] * 3 and b['std'] == [0.25] * 3 and b['height'] == 32, b
s = json.load(open('opts/student.json'))['head'][1]
assert s['name'] == 'shapes' and s['class_names'] == ['w', 'x', 'y', 'z'], s" &&
  pass "the attached conventions, task and class names are used" || fail "attached options"
printf 'w\nx\ny\n' >three.txt
bad "class names that do not match the outputs" "b.pt,class-names: 3 class names but the model has 4" \
  $A amalgamate --teacher a.pt:layer4 --teacher "b.pt:features,input-size=32,class-names=three.txt" \
  --data images --epochs 1 --out x14
bad "a misspelt attached option" "unknown option 'mena'; did you mean mean?" $A amalgamate \
  --teacher a.pt:layer4,mena=0.5 --teacher b.pt:features --data images --input-size 32 --out x15
absent "nothing written after refused options" x14 x15
ok "a global --mean that a sidecar overrides" $A amalgamate --teacher a.pt:layer4 \
  --teacher b.pt:features --data images --input-size 32 --mean 0.5 --epochs 1 --limit 10 --out gm
grep -q 'a.pt: its sidecar a.json sets "mean", so --mean does not apply to it' err &&
  pass "the overridden --mean is named" || fail "no warning for the overridden --mean"

# The user's steps that once failed or overwrote their files (issue 16).
ok "--limit on an image folder" $AMALGAM amalgamate --teacher a.pt:layer4 \
  --teacher b.pt:features --data images --input-size 32 --limit 10 --epochs 1 --out lim
grep -q "limit keeps 10" err && pass "--limit keeps 10 images" || fail "--limit keeps 10 images"
md5sum a.pt a.json >inputs.md5 2>/dev/null || md5sum a.pt >inputs.md5
bad "--export over a teacher" "would overwrite a.pt" $A amalgamate --teacher a.pt:layer4 \
  --teacher b.pt:features --data images --input-size 32 --epochs 1 --export a.pt --out x11
absent "nothing written after --export over a teacher" x11
md5sum -c --quiet inputs.md5 && pass "the teacher file is untouched" || fail "teacher file changed"
bad "--out of an existing run" "already holds a run" $A amalgamate --teacher a.pt:layer4 \
  --teacher b.pt:features --data images --input-size 32 --epochs 1 --out lim
ok "--overwrite replaces the run" $A amalgamate --teacher a.pt:layer4 --teacher b.pt:features \
  --data images --input-size 32 --limit 12 --epochs 1 --out lim --overwrite
[ "$(grep -c '"type":"epoch"' lim/metrics.jsonl)" = 1 ] && pass "no epoch of the old run is kept" ||
  fail "metrics.jsonl mixes runs: $(grep -c '"type":"epoch"' lim/metrics.jsonl) epoch records"
ok "--export into a new folder" $A amalgamate --teacher a.pt:layer4 --teacher b.pt:features \
  --data images --input-size 32 --limit 10 --epochs 1 --out x12 --export new/dir/s.pt
exists "export in the new folder" new/dir/s.pt
bad "--resume with --export" "--export: not applied on --resume (the run continues with the options in its config.json); export a finished run with: amalgam export RUN_DIR --out FILE.pt" \
  $A amalgamate --resume lim --export y.pt
bad "--resume with a new option" "--batch-size: not applied on --resume" $A amalgamate --resume lim --batch-size 32
ok "--resume --epochs extends a finished run" $A amalgamate --resume lim --epochs 2
[ "$(grep -c '"type":"epoch"' lim/metrics.jsonl)" = 2 ] && pass "the extended run trained epoch 2" ||
  fail "after --epochs 2: $(grep -c '"type":"epoch"' lim/metrics.jsonl) epoch records"
grep -q '"epochs": 2' lim/config.json && pass "config.json records the new epoch count" ||
  fail "config.json keeps the old epoch count"
bad "--resume cannot shorten a run" "can extend a run, not shorten it" $A amalgamate \
  --resume lim --epochs 1
bad "eval of TorchScript teachers without --data" "--data: required" $A eval \
  --teacher a.pt:layer4 --teacher b.pt:features --input-size 32

# --val-data: a labeled folder gives user runs validation curves; the routing check needs images
# of every task and says why it did not run.
ok "--val-data: a labeled validation folder" $A amalgamate --teacher a.pt:layer4 \
  --teacher b.pt:features --data images --input-size 32 --limit 10 --epochs 1 \
  --val-data labeled --out valrun
grep '"type":"epoch"' valrun/metrics.jsonl | grep -q '"val":{' &&
  pass "epoch records carry validation scores" || fail "no validation scores in metrics.jsonl"
"$PY" -c "
import json
c = json.load(open('valrun/config.json'))
assert c['val_data'] == 'labeled', c['val_data']
r = c['routing_check']
assert not r['checked'] and r['reason'].startswith('fewer than 20 validation images of task animals;'), r
# Without a labeled check the teachers' agreement decided the rule; the summary records both.
s = [json.loads(l) for l in open('valrun/metrics.jsonl') if '\"summary\"' in l][-1]
assert s['routing_rule'] in ('gate', 'concatenated') and -1 <= s['routing_agreement'] <= 1, s" &&
  pass "the routing check names why it did not run" || fail "routing check record"
"$PY" -c "
import json
side = json.load(open('valrun/best_student.json'))
assert side['best_epoch'] == 1 and 'union' in side['val'], side" &&
  pass "best_student.pt: the best validation epoch, with its scores" || fail "best_student.pt"
ok "export the best student" $A export valrun/best_student.pt --out best_export.pt
exists "the best student's export" best_export.pt best_export.json
bad "--val-data without the teachers' classes" "images: no class folder is named after a class" \
  $A amalgamate --teacher a.pt:layer4 --teacher b.pt:features --data images --input-size 32 \
  --epochs 1 --val-data images --out valbad
absent "nothing written after a refused --val-data" valbad

# `export RUN_DIR`: a finished run's student as TorchScript, without retraining; never over
# the run's own files.
ok "export a run" $A export lim --out exported/lim.pt
exists "the export and its sidecar" exported/lim.pt exported/lim.json
ok "the export answers like the run's student" $A predict --model lim/student.pt \
  --data images/rgb --json pe1.json
# compare_logits.py derives its bound from the student: the float32 sums a logit passes through.
ok "python logits of the export = C++ student" "$PY" "$HERE/fixtures/compare_logits.py" \
  exported/lim.pt pe1.json
md5sum lim/student.pt lim/student.json >run.md5
bad "export over the run's student" "--out: lim/student.pt would overwrite lim/student.pt, an input" \
  $A export lim --out lim/student.pt
md5sum -c --quiet run.md5 && pass "the run's student is untouched" || fail "run's student changed"
mkdir -p empty_run
bad "export of a folder without a student" "empty_run: no student.pt in this run directory" \
  $A export empty_run --out refused.pt
absent "nothing written by a refused export" refused.pt
bad "export of an export" "already a TorchScript export" $A export exported/lim.pt --out again.pt
bad "export to a non-.pt name" "--out: 'lim.onnx' should end in .pt" $A export lim --out lim.onnx

# Python loads the export; its logits match C++ (the export and the run's own checkpoint).
ok "predict with the export (C++)" $A predict --model student.pt --data images/rgb --json p1.json
ok "python logits = C++ logits (export)" "$PY" "$HERE/fixtures/compare_logits.py" student.pt p1.json
ok "predict with the run's student" $A predict --model runs/amalgamate-*/student.pt \
  --data images/rgb --json p2.json
ok "python export = C++ student" "$PY" "$HERE/fixtures/compare_logits.py" student.pt p2.json
ONE=$(find images/rgb -name '*.png' | sort | head -1)
ok "predict one image file" $A predict --model student.pt --data "$ONE" --data images/rgb --json p4.json
ok "predict gives probabilities, the task gate and the union answer" "$PY" -c "
import json, math
images = json.load(open('p4.json'))['images']
assert images[0]['file'] == '$ONE' and len(images) == 1 + len(json.load(open('p1.json'))['images'])
u = 2**-24
for e in images:
    z = e['logits']; top = max(range(len(z)), key=z.__getitem__); k = len(z)
    # A float32 softmax over k logits: exp (2u), its k-term sum and the division, and u |z - max|
    # for each (at most u / e of a probability): <= (k + 3 + k / e)u in all; a task's share sums
    # its slice (k u more). Python's figures are float64 (exact by comparison).
    gate = e['task_probability']
    assert abs(sum(gate.values()) - 1) <= (2 * k + 3 + k / math.e) * u, gate
    joint = math.exp(z[top]) / sum(math.exp(v) for v in z)
    assert abs(e['union']['probability'] - joint) <= (k + 3 + k / math.e) * u, (e['union'], joint)
    assert e['union']['task'] in gate and e['union']['class'] == e['predicted'][e['union']['task']]
    assert all(0 < p <= 1 for p in e['probability'].values())"
bad "predict on a file that is not an image" "not an image file" $A predict --model student.pt \
  --data p1.json

# A user's TorchScript student, two folders combined, augmentation.
ok "TorchScript student" $A amalgamate --teacher a.pt:layer4 --teacher b.pt:features \
  --data images --data more --student s.pt:layer4 --epochs 1 --input-size 32 --crop-padding 4 \
  --flip --export s_out.pt --out run_s
ok "predict with the exported TorchScript student" $A predict --model s_out.pt --data images/rgb \
  --json p3.json
ok "python = C++ (TorchScript student)" "$PY" "$HERE/fixtures/compare_logits.py" s_out.pt p3.json
ok "the user's student was trained" "$PY" -c "
import torch
x = torch.rand(2, 3, 32, 32)
a, b = torch.jit.load('s.pt').eval()(x), torch.jit.load('s_out.pt')(x)
assert a.shape == b.shape == (2, 7) and (a - b).abs().max() > 1e-4"

# Labeled folders: teach and eval; eval matches class folders to the teachers' class names.
ok "teach a task chosen by class folder names" $A teach --data labeled --task pets=cat,dog \
  --arch resnet --width 8 --epochs 1 --out t2
"$PY" -c "
import json
task = json.load(open('t2/teacher.json'))['task']
assert task['class_names'] == ['cat', 'dog'], task" &&
  pass "the task holds the named classes" || fail "the task's classes by name"
bad "a misspelt class folder in --task" "'dgo' is no class folder's name; did you mean dog?" \
  $A teach --data labeled --task pets=cat,dgo --epochs 1 --out t3
cp a.pt twin.pt && cp a.json twin.json
ok "two teachers with one task name" $A amalgamate --teacher a.pt:layer4 --teacher twin.pt:layer4 \
  --data images --epochs 1 --limit 10 --out twins
grep -q "another teacher's task is also called 'animals'; this one is called 'animals2'" err &&
  pass "the renamed task is named in a warning" || fail "no warning for the renamed task"
bad "eval with a class name in two tasks" "class 'bird' belongs to two tasks (animals and animals2)" \
  $A eval --teacher a.pt --teacher twin.pt --data labeled
ok "teach on a labeled folder" $A teach --data labeled --arch resnet --width 8 --epochs 1 \
  --crop-padding 2 --flip --out t1
ok "eval the student on a labeled folder" $A eval --student student.pt --teacher a.pt:layer4 \
  --teacher b.pt:features --input-size 32 --data labeled --json ev.json
grep -q '"student_acc"' ev.json && grep -q "no images" out && pass "eval scores the known task" ||
  fail "eval scores the known task"
ok "eval without :LAYER (logits only)" $A eval --student student.pt --teacher a.pt \
  --teacher b.pt --input-size 32 --data labeled --json ev2.json
"$PY" -c "
import json
a, b = json.load(open('ev.json')), json.load(open('ev2.json'))
assert [t.get('teacher_acc') for t in a['tasks']] == [t.get('teacher_acc') for t in b['tasks']], (a, b)" &&
  pass "the same teacher accuracies without :LAYER" || fail "teacher accuracies differ without :LAYER"

# Bad input: one line naming the file, non-zero exit, nothing written.
bad "missing layer lists module paths" "layer4, layer4.0" $A amalgamate --teacher a.pt:layer9 \
  --teacher b.pt:features --data images --input-size 32 --out x1
absent "no output after refusal" x1
bad "layer called twice" "called 2 times" $A amalgamate --teacher a.pt:layer1.0.relu \
  --teacher b.pt:features --data images --input-size 32 --out x2
bad "no input size" "input size unknown" $A amalgamate --teacher a.pt:layer4 \
  --teacher b.pt:features --data images --out x3
ok "teachers of different input sizes (32 and 64)" $A amalgamate --teacher a.pt:layer4 \
  --teacher c.pt:features --data images --input-size 32 --epochs 1 --out x4
"$PY" -c "
import json
n = json.load(open('x4/config.json'))['networks']
assert [t['input']['height'] for t in n['teachers']] == [32, 64], n['teachers']
assert n['student']['input']['height'] == 64, n['student']" &&
  pass "each teacher sees its own size; the student takes the largest" || fail "x4 geometry record"
bad "corrupt image" "with_bad/broken.png" $A amalgamate --teacher a.pt:layer4 \
  --teacher b.pt:features --data with_bad --input-size 32 --out x5
absent "no output after a corrupt image" x5
ok "corrupt image skipped on request" $A amalgamate --teacher a.pt:layer4 --teacher b.pt:features \
  --data with_bad --input-size 32 --on-bad-image skip --epochs 1 --out x6
bad "TorchScript teacher without LAYER" "needs :LAYER" $A amalgamate --teacher a.pt \
  --teacher b.pt:features --data images --input-size 32 --out x7
bad "student without LAYER" "needs :LAYER" $A amalgamate --teacher a.pt:layer4 \
  --teacher b.pt:features --data images --input-size 32 --student s.pt --out x8
bad "not TorchScript" "nor a TorchScript file" $A amalgamate --teacher a.json:x \
  --teacher b.pt:features --data images --input-size 32 --out x9
bad "a teacher traced in train mode" "train_mode.pt: it answers in train mode" $A amalgamate \
  --teacher a.pt:layer4 --teacher train_mode.pt:features --data images --input-size 32 --out x16
absent "nothing written for a teacher traced in train mode" x16
bad "a torch.save state_dict" "state_dict.pt: written by torch.save" $A amalgamate \
  --teacher state_dict.pt:layer4 --teacher b.pt:features --data images --input-size 32 --out x13
bad "student with the wrong number of logits" "logits" $A amalgamate --teacher a.pt:layer4 \
  --data images --input-size 32 --student s.pt:layer4 --out x10

summary user_models
