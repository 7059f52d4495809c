#!/usr/bin/env bash
# Faults in the middle of work, as a user meets them: two runs on one folder, a diverging run, a
# full disk under each file a run writes, SIGKILL/SIGTERM while caching teacher outputs and while
# exporting, a teacher replaced before --resume, an out-of-memory batch, degenerate sizes. Each
# case ends in a one-line error or a clean result; no half-written student, export or checkpoint
# is left where a user would take it for a good one; the run resumes, or says it cannot.
# Faults are placed exactly with AMALGAM_FAULT (src/core/fault_injection.h), not with timers.
set -u
AMALGAM=$(realpath "${1:?usage: faults_test.sh path/to/amalgam}")
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib.sh"
# Background runs this test starts are ended with it, whatever stops it (a ctest timeout too).
trap 'kill -KILL ${pid:-} ${p1:-} ${p2:-} 2>/dev/null; rm -rf "$W"' EXIT
cd "$W" || exit 1
A="$AMALGAM --quiet"

ok "teacher A" $A teach --task A=0-4 --arch resnet --width 8 --limit 1500 --val-size 500 --epochs 1 --out ta
ok "teacher B" $A teach --task B=5-9 --arch vgg --width 8 --limit 1500 --val-size 500 --epochs 1 --out tb
ok "teacher A, seed 2" $A teach --task A=0-4 --arch resnet --width 8 --limit 1500 --val-size 500 \
  --epochs 1 --seed 2 --out ta2
TEACHERS="--teacher ta/teacher.pt --teacher tb/teacher.pt --student-width 8 --threads 2"
BASE="$TEACHERS --limit 600 --val-size 200 --batch-size 64"

# no_temporaries NAME DIR: no *.tmp* file left in DIR.
no_temporaries() {
  if compgen -G "$2/*.tmp*" >/dev/null || compgen -G "$2/.*.tmp*" >/dev/null; then
    fail "$1: temporary files left in $2"
  else
    pass "$1: no temporary files left"
  fi
}
# loads NAME FILE: the wheel's torch loads the export FILE and it answers 10 logits an image.
loads() {
  if "$PY" -c "import sys,torch; m=torch.jit.load(sys.argv[1]); assert m(torch.rand(2,1,28,28)).shape==(2,10)" "$2" 2>"$W/py.err"
  then pass "$1"; else fail "$1: $(tail -n 1 "$W/py.err")"; fi
}
# whole NAME STUDENT: amalgam reads the saved student back (eval on 200 images).
whole() {
  if $A eval --teacher ta/teacher.pt --teacher tb/teacher.pt --student "$2" --limit 200 >"$W/eval.out" 2>"$W/eval.err"; then pass "$1"
  else fail "$1: $(tail -n 1 "$W/eval.err")"; fi
}
# signalled NAME WANT CMD...: CMD must exit with status WANT.
signalled() {
  local name=$1 want=$2; shift 2
  "$@" >"$W/out" 2>"$W/err"
  local rc=$?
  [ $rc -eq "$want" ] && pass "$name -> exit $rc" || fail "$name: exit $rc (want $want): $(tail -n 1 "$W/err")"
}
# wait_for FILE: until FILE exists (at most 60 s).
wait_for() {
  for _ in $(seq 600); do [ -s "$1" ] && return 0; sleep 0.1; done
  return 1
}

# --- Two runs started at once on one new folder: exactly one trains there (regression: both
# succeeded and wrote into it).
$A amalgamate $BASE --epochs 1 --out twin >twin1.out 2>twin1.err &
p1=$!
$A amalgamate $BASE --epochs 1 --out twin >twin2.out 2>twin2.err &
p2=$!
wait $p1; r1=$?
wait $p2; r2=$?
other=$([ $r1 -eq 0 ] && cat twin2.err || cat twin1.err)
if { [ $r1 -eq 0 ] && [ $r2 -eq 1 ]; } || { [ $r1 -eq 1 ] && [ $r2 -eq 0 ]; }; then
  if [[ "$other" == *"is in use by another amalgam run"* || "$other" == *"already holds a run"* ]]
  then pass "two runs at once: one trains, one is refused -> $(tail -n 1 <<<"$other")"
  else fail "two runs at once: the refusal says: $other"; fi
else
  fail "two runs at once: exits $r1 and $r2 (want 0 and 1)"
fi
teachers=$(grep -c '"type":"teachers"' twin/metrics.jsonl)
summaries=$(grep -c '"type":"summary"' twin/metrics.jsonl)
[ "$teachers" -eq 1 ] && [ "$summaries" -eq 1 ] && pass "two runs at once: metrics.jsonl holds one run" ||
  fail "two runs at once: metrics.jsonl holds $teachers runs' starts, $summaries ends"

# --- A run in progress: every writer on its folder is refused at once, with the holder's pid;
# report reads a consistent snapshot meanwhile; SIGKILL releases the lock and --resume finishes.
$AMALGAM amalgamate $BASE --epochs 40 --checkpoint-every 5 --out busy >busy.out 2>busy.err &
pid=$!
wait_for busy/checkpoint.pt || fail "busy: no checkpoint within 60 s"
bad "second run on a busy folder" "busy is in use by another amalgam run (pid $pid)" \
  $A amalgamate $BASE --epochs 1 --overwrite --out busy
bad "--resume of a busy run" "busy is in use by another amalgam run (pid $pid)" \
  $A amalgamate --resume busy
bad "teach into a busy folder" "busy is in use by another amalgam run (pid $pid)" \
  $A teach --task A=0-4 --width 8 --limit 300 --epochs 1 --out busy
ok "report while the run writes" $A report busy
exists "report while the run writes: a report" busy/report.html
kill -KILL $pid 2>/dev/null
wait $pid 2>/dev/null
absent "killed run: no student" busy/student.pt
ok "killed run: --resume takes the released lock and finishes" $A amalgamate --resume busy
exists "killed run: resumed student" busy/student.pt busy/student.json

# --- Divergence (regression: --lr 1e6 saved a useless student with exit 0).
bad "a diverging fresh run stops" "--lr" $A amalgamate $BASE --epochs 1 --lr 1e6 --out div
absent "a diverging fresh run: no student, no checkpoint" div/student.pt div/checkpoint.pt
grep -q "starts the run again from its first step" "$W/err" &&
  pass "a diverging fresh run: the error says --resume starts it again" ||
  fail "a diverging fresh run: no resume hint: $(tail -n 1 "$W/err")"
ok "a diverged fresh run resumes with a lower --lr" $A amalgamate --resume div --lr 0.01
exists "a diverged fresh run: its student after --resume" div/student.pt
ok "a good epoch" $A amalgamate $BASE --epochs 1 --out ext
cp ext/checkpoint.pt ext-epoch1.pt
bad "a diverging second epoch stops" "lower --lr" $A amalgamate --resume ext --epochs 2 --lr 1e6
grep -q "last good checkpoint" "$W/err" && pass "a diverging second epoch: the checkpoint is kept" ||
  fail "a diverging second epoch: $(tail -n 1 "$W/err")"
cmp -s ext/checkpoint.pt ext-epoch1.pt && pass "a diverging second epoch: epoch 1's checkpoint intact" ||
  fail "a diverging second epoch: the checkpoint changed"
ok "a diverged second epoch continues with a lower --lr" $A amalgamate --resume ext --lr 0.002
grep -q '"epochs": 2' ext/config.json && pass "the continued run has 2 epochs" ||
  fail "the continued run's config: $(grep -o '"epochs": [0-9]*' ext/config.json)"

# --- A full disk half-way through each file a run writes: one line naming the file, the file
# absent (never half-written), no temporaries, the way on said; --resume then finishes.
for file in checkpoint.pt student.pt export.pt report.html; do
  dir=disk-${file%.*}
  AMALGAM_FAULT=write:$file bad "full disk writing $file" "$dir/$file: write failed (disk full" \
    $A amalgamate $BASE --epochs 1 --export $dir/export.pt --out $dir
  grep -q -- "--resume $dir" "$W/err" && pass "full disk writing $file: the error says --resume" ||
    fail "full disk writing $file: no resume hint: $(tail -n 1 "$W/err")"
  absent "full disk writing $file: no half-written $file" $dir/$file
  no_temporaries "full disk writing $file" $dir
  ok "full disk writing $file: --resume finishes" $A amalgamate --resume $dir
  exists "full disk writing $file: every output after --resume" \
    $dir/student.pt $dir/student.json $dir/export.pt $dir/report.html
done
loads "the export written on --resume loads in PyTorch" disk-export/export.pt
# A real file size limit (RLIMIT_FSIZE), not an injected one.
( trap '' XFSZ; ulimit -f 100; $AMALGAM amalgamate $BASE --epochs 1 --out fsize >fsize.out 2>fsize.err )
rc=$?
last=$(tail -n 1 fsize.err)
[ $rc -eq 1 ] && [[ "$last" == *"write failed (disk full or file size limit?)"*"--resume fsize"* ]] &&
  pass "file size limit -> $last" || fail "file size limit: exit $rc: $last"
absent "file size limit: no half-written student or checkpoint" fsize/student.pt fsize/checkpoint.pt
no_temporaries "file size limit" fsize
ok "file size limit: --resume without the limit finishes" $A amalgamate --resume fsize
exists "file size limit: the student after --resume" fsize/student.pt fsize/student.json

# --- A model file that cannot be written replaces nothing: the older export of the same path is
# removed first, so no older .pt is left beside the newer sidecar.
ok "an export to replace" $A amalgamate $BASE --epochs 1 --export stale.pt --out stale1
AMALGAM_FAULT=write:stale.pt bad "a failed export over an older one" "stale.pt: write failed" \
  $A amalgamate $BASE --epochs 1 --seed 3 --export stale.pt --out stale2
absent "a failed export over an older one: no older stale.pt beside the new sidecar" stale.pt

# --- Signals while caching teacher outputs and while exporting.
AMALGAM_FAULT=teacher-cache:KILL signalled "SIGKILL while caching" 137 \
  $A amalgamate $BASE --epochs 1 --out cache-kill
absent "SIGKILL while caching: nothing trained, nothing saved" cache-kill/checkpoint.pt cache-kill/student.pt
ok "SIGKILL while caching: --resume starts again and finishes" $A amalgamate --resume cache-kill
exists "SIGKILL while caching: student after --resume" cache-kill/student.pt
AMALGAM_FAULT=teacher-cache:TERM signalled "SIGTERM while caching" 143 \
  $A amalgamate $BASE --epochs 1 --out cache-term
grep -q "checkpoint written to cache-term/checkpoint.pt" "$W/err" &&
  pass "SIGTERM while caching: stops after the first step with a checkpoint" ||
  fail "SIGTERM while caching: $(tail -n 1 "$W/err")"
absent "SIGTERM while caching: no student" cache-term/student.pt
ok "SIGTERM while caching: --resume finishes" $A amalgamate --resume cache-term
AMALGAM_FAULT=export:KILL signalled "SIGKILL while exporting" 137 \
  $A amalgamate $BASE --epochs 1 --export export-kill/export.pt --out export-kill
absent "SIGKILL while exporting: no export, no export sidecar" export-kill/export.pt export-kill/export.json
whole "SIGKILL while exporting: the student saved before is whole" export-kill/student.pt
ok "SIGKILL while exporting: --resume exports" $A amalgamate --resume export-kill
loads "SIGKILL while exporting: the export after --resume loads" export-kill/export.pt
AMALGAM_FAULT=export:TERM signalled "SIGTERM while exporting: the export completes" 0 \
  $A amalgamate $BASE --epochs 1 --export export-term/export.pt --out export-term
loads "SIGTERM while exporting: the export loads" export-term/export.pt

# --- A teacher file replaced between a run and its --resume (same path, other weights).
mkdir -p tx && cp ta/teacher.pt ta/teacher.json tx/
ok "a run with teacher tx" $A amalgamate --teacher tx/teacher.pt --teacher tb/teacher.pt \
  --student-width 8 --limit 600 --val-size 200 --batch-size 64 --epochs 1 --out swap
cp ta2/teacher.pt ta2/teacher.json tx/
bad "--resume after its teacher was replaced" "a teacher file has changed since the run began" \
  $A amalgamate --resume swap --epochs 2

# --- A teacher that answers NaN on the transfer images: refused before training, by name.
"$PY" - <<'PY' || fail "the NaN teacher could not be made"
import torch
class Broken(torch.nn.Module):  # fine on amalgam's bright probe images, NaN on darker ones
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Conv2d(1, 4, 3)
        self.fc = torch.nn.Linear(4, 5)
    def forward(self, x):
        broken = torch.where(x.mean((1, 2, 3)) < 0.45, float("nan"), 1.0).unsqueeze(1)
        return self.fc(self.body(x).mean((2, 3))) * broken
torch.jit.trace(Broken().eval(), torch.rand(1, 1, 28, 28)).save("nan.pt")  # no source file: traced
PY
bad "a teacher with NaN outputs" "--teacher: nan.pt:body gives non-finite outputs (NaN or Inf) on the transfer images" \
  $A amalgamate --teacher "nan.pt:body,channels=1,input-size=28,task=N,class-names=a,b,c,d,e" \
  --teacher tb/teacher.pt --data /usr/share/datasets/fashion-mnist --student-width 8 --limit 300 \
  --epochs 1 --out nanrun
absent "a teacher with NaN outputs: nothing trained" nanrun/checkpoint.pt nanrun/student.pt

# --- Out of memory, degenerate sizes.
bad "an out-of-memory batch" "out of memory at --batch-size 20000; lower --batch-size" \
  bash -c "ulimit -v 3500000; $A amalgamate $TEACHERS --limit 20000 --batch-size 20000 --epochs 1 --out oom"
absent "an out-of-memory batch: no student" oom/student.pt
bad "--batch-size 0" "--batch-size: must be > 0, got 0" $A amalgamate $TEACHERS --batch-size 0 --out z1
bad "--epochs 0" "--epochs: must be > 0, got 0" $A amalgamate $BASE --epochs 0 --out z2
absent "sizes refused: nothing written" z1 z2
ok "--batch-size larger than the transfer set: one batch an epoch" \
  $A amalgamate $TEACHERS --limit 600 --batch-size 100000 --epochs 1 --out big
whole "--batch-size larger than the transfer set: a student" big/student.pt

# Nothing left running.
sleep 0.2
[ -z "$(jobs -pr)" ] && pass "no process left running" || fail "processes left: $(jobs -pr)"
summary faults
