#!/usr/bin/env bash
# Never lose work, as a user meets it: SIGKILL at a random moment then --resume ends with the
# same weights as an uninterrupted run (bitwise); SIGINT/SIGTERM checkpoint and exit 130/143;
# a NaN stops the run and keeps the last good checkpoint; a full disk and damaged files leave no
# half-written output.
set -u
AMALGAM=$(realpath "${1:?usage: reliability_test.sh path/to/amalgam}")
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib.sh"
cd "$W" || exit 1
A="$AMALGAM --quiet"

ok "teacher A" $A teach --task A=0-4 --arch resnet --width 8 --limit 1500 --val-size 500 --epochs 1 --out ta
ok "teacher B" $A teach --task B=5-9 --arch vgg --width 8 --limit 1500 --val-size 500 --epochs 1 --out tb
BASE="--teacher ta/teacher.pt --teacher tb/teacher.pt --student-width 8 --limit 3000 --val-size 500
      --batch-size 64 --threads 2 --flip --method routed-cfl"  # the common feature block resumes too
RUN="$BASE --epochs 3 --checkpoint-every 5"
SECONDS=0
ok "uninterrupted run" $A amalgamate $RUN --out full
FULL_S=$SECONDS

same() {  # same NAME A.pt B.pt: every parameter and buffer bitwise equal
  if "$PY" - "$2" "$3" <<'PY'; then pass "$1"; else fail "$1"; fi
import sys, torch
a, b = torch.jit.load(sys.argv[1]), torch.jit.load(sys.argv[2])
pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
ba, bb = dict(a.named_buffers()), dict(b.named_buffers())
sys.exit(0 if pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)
         and all(torch.equal(ba[k], bb[k]) for k in ba) else 1)
PY
}

# Runs `amalgam ARGS... --out DIR` in the background and SIGKILLs it after a random share in
# [LO, HI] of TOTAL seconds (an uninterrupted run's time), saying when.
kill_at_random() {  # DIR LO HI TOTAL ARGS...
  local dir=$1 lo=$2 hi=$3 total=$4 pid delay
  shift 4
  $AMALGAM "$@" --out "$dir" >/dev/null 2>&1 &
  pid=$!
  delay=$("$PY" -c "import random; print(round(random.uniform($lo, $hi) * $total, 2))")
  sleep "$delay"
  kill -KILL $pid 2>/dev/null
  wait $pid 2>/dev/null
  echo "     ($dir killed after ${delay}s of a ${total}s run)"
}

# SIGKILL at a random moment (after the first checkpoint, before the end), then resume.
for round in 1 2; do
  kill_at_random kill$round 0.25 0.85 "$FULL_S" amalgamate $RUN
  if [ -e kill$round/student.pt ]; then
    pass "kill $round: the run had already finished"
  else
    ok "kill $round: resume" $A amalgamate --resume kill$round
  fi
  same "kill $round: same student as the uninterrupted run" full/student.pt kill$round/student.pt
  same "kill $round: same common feature block" full/student.block.pt kill$round/student.block.pt
done

# SIGINT and SIGTERM: finish the step, checkpoint, exit 128 + signal.
for sig in INT TERM; do
  $AMALGAM amalgamate $RUN --out sig$sig >/dev/null 2>sig$sig.err &
  pid=$!
  sleep 3
  kill -$sig $pid
  wait $pid
  rc=$?
  want=$([ $sig = INT ] && echo 130 || echo 143)
  if [ $rc -eq "$want" ] && grep -q "checkpoint written to sig$sig/checkpoint.pt" sig$sig.err; then
    pass "SIG$sig -> exit $rc, $(tail -n 1 sig$sig.err)"
  else
    fail "SIG$sig: exit $rc (want $want): $(tail -n 1 sig$sig.err)"
  fi
done
ok "resume after SIGINT" $A amalgamate --resume sigINT
same "SIGINT then resume: same student" full/student.pt sigINT/student.pt

# Teaching runs on the same loop: SIGKILL then teach --resume gives the same teacher, bitwise;
# SIGTERM checkpoints and exits 143; a resume may not change the teacher's options.
TEACH="--task A=0-4 --arch resnet --width 8 --limit 12000 --val-size 500 --epochs 4
       --checkpoint-every 5 --threads 2 --flip"
SECONDS=0
ok "uninterrupted teach" $A teach $TEACH --out tfull
TEACH_S=$SECONDS
kill_at_random tkill 0.3 0.8 "$TEACH_S" teach $TEACH
if [ -e tkill/teacher.pt ]; then
  pass "teach kill: the run had already finished"
else
  ok "teach kill: resume" $A teach --resume tkill
fi
same "teach kill: same teacher as the uninterrupted run" tfull/teacher.pt tkill/teacher.pt
$AMALGAM teach $TEACH --out tterm >/dev/null 2>tterm.err &
pid=$!
sleep "$("$PY" -c "print(round(0.5 * $TEACH_S, 2))")"
kill -TERM $pid
wait $pid
rc=$?
if [ $rc -eq 143 ] && grep -q "checkpoint written to tterm/checkpoint.pt" tterm.err; then
  pass "teach SIGTERM -> exit 143, $(tail -n 1 tterm.err)"
else
  fail "teach SIGTERM: exit $rc (want 143): $(tail -n 1 tterm.err)"
fi
bad "teach resume with other options" "--arch: not applied on --resume" $A teach --resume tterm \
  --arch vgg
ok "teach resume after SIGTERM" $A teach --resume tterm
same "teach SIGTERM then resume: same teacher" tfull/teacher.pt tterm/teacher.pt
bad "teach resume of an amalgamate run" "amalgam amalgamate --resume" $A teach --resume full
bad "a new teach over a finished one" "tfull already holds a run; continue it with amalgam teach --resume tfull, or give --overwrite" \
  $A teach $TEACH --out tfull

# A diverging run stops at the first non-finite term and keeps its last good checkpoint.
# The growth guard is off here (--max-loss-growth 0), so the non-finite guard itself is what stops it.
bad "NaN/Inf loss" "last good checkpoint" $A amalgamate $BASE --epochs 1 --lr 1e10 --checkpoint-every 1 \
  --max-loss-growth 0 --out nan
grep -qE "loss term '[a-z]+' is -?(nan|inf)|a gradient" "$W/err" &&
  pass "NaN/Inf loss: the error names the term (or a gradient)" ||
  fail "NaN/Inf loss: $(tail -n 1 "$W/err")"
exists "the last good checkpoint is kept" nan/checkpoint.pt
absent "no student from a diverged run" nan/student.pt

# A full disk (file size limit) while writing the student: an error, no half-written file.
( trap '' XFSZ; ulimit -f 200; $AMALGAM amalgamate $BASE --epochs 1 --out disk >disk.out 2>disk.err )
rc=$?
last=$(tail -n 1 disk.err)
if [ $rc -ne 0 ] && [[ "$last" == "amalgam: error: "*"disk/"* ]]; then pass "full disk -> $last"; else fail "full disk: exit $rc: $last"; fi
absent "no half-written student" disk/student.pt
ls disk/*.tmp* >/dev/null 2>&1 && fail "temporary files left behind" || pass "no temporary files left"

# Damaged or foreign files.
mkdir -p norun
bad "resume a folder that is no run" "config.json is missing" $A amalgamate --resume norun
bad "amalgamate --resume of a teach run" "continue that run with amalgam teach --resume" \
  $A amalgamate --resume ta
mkdir -p junkrun && cp full/config.json junkrun/ && printf 'junk' >junkrun/checkpoint.pt
bad "resume from a junk checkpoint" "not an amalgam run checkpoint" $A amalgamate --resume junkrun
bad "resume with other options" "--teacher: not applied on --resume" $A amalgamate --resume full \
  --teacher ta/teacher.pt
printf 'junk' >junk.pt
bad "teacher that is neither ours nor TorchScript" "nor a TorchScript file" $A amalgamate \
  --teacher junk.pt --out x1
# Hostile JSON: in every JSON file a user or a crash hands us (a run's config.json on --resume,
# metrics.jsonl for report, a model's sidecar, a --config file) a wrong type, an unknown key or a
# truncated end stops the command with exit 1 and one line naming the file and the key; nothing
# is written.
tree_sum() { find "$1" -type f | sort | xargs md5sum | md5sum; }
refused() {  # refused NAME PATTERN CMD...: exit 1, one error line "amalgam: error: ...PATTERN..."
  local name=$1 pattern=$2; shift 2
  "$@" >"$W/out" 2>"$W/err"
  local rc=$? lines last
  lines=$(grep -vc '^warning: ' "$W/err")  # warnings about the teachers may come first
  last=$(tail -n 1 "$W/err")
  if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && [[ "$last" == "amalgam: error: "*"$pattern"* ]]; then
    pass "$name -> $last"
  else
    fail "$name: exit $rc, $lines stderr lines besides warnings, last: $last"
  fi
}
edit_json() {  # edit_json FILE PYTHON: FILE's JSON as j, changed by the statement, written back
  "$PY" -c "import json,sys; j=json.load(open(sys.argv[1])); $2; json.dump(j, open(sys.argv[1], 'w'))" "$1"
}
edit_line2() {  # edit_line2 FILE PYTHON: the same for the record on line 2 of a JSON-lines FILE
  "$PY" -c "import json,sys; p=sys.argv[1]; L=open(p).read().splitlines(); j=json.loads(L[1]); $2
L[1]=json.dumps(j); open(p,'w').write('\\n'.join(L)+'\\n')" "$1"
}
for fault in type key cut; do
  rm -rf "j$fault" && cp -r full "j$fault"
  case $fault in
    type) edit_json "j$fault/config.json" "j['options']['train']['epochs'] = '3'"
          want="j$fault/config.json \"options\": \"train.epochs\" must be an integer, got a string" ;;
    key) edit_json "j$fault/config.json" "j['teacherz'] = j['teachers']"
         want="j$fault/config.json: unknown key \"teacherz\"; did you mean teachers?" ;;
    cut) head -c 300 full/config.json >"j$fault/config.json"
         want="j$fault/config.json: not valid JSON (truncated or damaged?)" ;;
  esac
  before=$(tree_sum "j$fault")
  refused "run config.json, $fault" "$want" $A amalgamate --resume "j$fault"
  [ "$before" = "$(tree_sum "j$fault")" ] && pass "run config.json, $fault: nothing written" ||
    fail "run config.json, $fault: the run directory changed"
done
rm -rf jcut && cp -r full jcut && head -c 2000 full/checkpoint.pt >jcut/checkpoint.pt
refused "truncated run checkpoint" "jcut/checkpoint.pt: truncated or damaged run checkpoint" \
  $A amalgamate --resume jcut
for fault in type key cut; do
  rm -rf "m$fault" && cp -r full "m$fault" && rm -f "m$fault/report.html"
  case $fault in
    type) edit_line2 "m$fault/metrics.jsonl" "j['epoch'] = str(j['epoch'])"
          want="m$fault/metrics.jsonl line 2: \"epoch\" must be an integer, got a string" ;;
    key) edit_line2 "m$fault/metrics.jsonl" "j['losss'] = j.pop('loss')"
         want="m$fault/metrics.jsonl line 2: unknown key \"losss\"; did you mean loss?" ;;
    cut) head -c 50 full/metrics.jsonl >"m$fault/metrics.jsonl"
         want="m$fault/metrics.jsonl line 1: not valid JSON (truncated or damaged?)" ;;
  esac
  refused "metrics.jsonl, $fault" "$want" $A report "m$fault"
  absent "metrics.jsonl, $fault: no report" "m$fault/report.html"
done
for fault in type key cut; do
  mkdir -p "s$fault" && cp ta/teacher.pt ta/teacher.json "s$fault/"
  case $fault in
    type) edit_json "s$fault/teacher.json" "j['model']['width'] = '8'"
          want="s$fault/teacher.json \"model\": \"width\" must be an integer, got a string" ;;
    key) edit_json "s$fault/teacher.json" "j['model']['widht'] = 8"
         want="s$fault/teacher.json \"model\": unknown key \"widht\"; did you mean width?" ;;
    cut) head -c 50 ta/teacher.json >"s$fault/teacher.json"
         want="s$fault/teacher.json: not valid JSON (truncated or damaged?)" ;;
  esac
  refused "teacher sidecar, $fault" "$want" $A amalgamate --teacher "s$fault/teacher.pt" \
    --teacher tb/teacher.pt --limit 500 --out "xs$fault"
  absent "teacher sidecar, $fault: nothing written" "xs$fault"
done
echo '{"epochs": 1, "student_width": 8' >cut.json
refused "truncated --config file" "cut.json: not valid JSON (truncated or damaged?)" \
  $A amalgamate --config cut.json --teacher ta/teacher.pt --out xc
absent "truncated --config: nothing written" xc

# The IDX header fuzzing found: it must be refused as truncated, not by running out of memory.
mkdir -p oom
printf '\x00\x00\x08\x03\x00\x00\x00\x03\x00\x00\x02\xfc\x00\x24\x00\x00\x05\x5f' >oom/train-images-idx3-ubyte
cp /usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz oom/
bad "IDX header claiming 5 GB, 2 GB of memory" "truncated IDX file" \
  bash -c "ulimit -v 3000000; $AMALGAM amalgamate --teacher ta/teacher.pt --data oom --out x2"

summary reliability
