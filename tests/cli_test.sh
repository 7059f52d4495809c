#!/usr/bin/env bash
# Drives the amalgam tool as a user would: teach two teachers, amalgamate, evaluate; then feeds
# it bad input and checks each refusal is one clear line, a non-zero exit and no output file.
set -u
AMALGAM=${1:?usage: cli_test.sh path/to/amalgam}
source "$(dirname "$0")/lib.sh"

A="$AMALGAM --quiet"
SMALL="--limit 2000 --val-size 500 --epochs 1 --batch-size 64"

ok "teach resnet on A=0-4" $A teach --task A=0-4 --arch resnet --width 8 $SMALL --out "$W/a"
exists "teacher A files" "$W/a/teacher.pt" "$W/a/teacher.json"
ok "teach vgg on B=5-9" $A teach --task B=5-9 --arch vgg --width 8 $SMALL --out "$W/b"
ok "teach mobilenetv2 on C=5-9" $A teach --task C=5-9 --arch mobilenetv2 --width 8 $SMALL --out "$W/c"
# --dry-run for every method (the names from the refusal of an unknown one): the run's own plan
# printed as JSON, both teachers' head slices, nothing written.
methods=$($A amalgamate --method nosuch --teacher "$W/a/teacher.pt" 2>&1 |
  sed -n "s/.*expected one of \(.*\), got .*/\1/p" | tr -d ',')
[ -n "$methods" ] && pass "every method: $methods" || fail "no method list in the refusal"
for method in $methods; do
  ok "--dry-run --method $method" $A amalgamate --method "$method" --teacher "$W/a/teacher.pt" \
    --teacher "$W/b/teacher.pt" --student-width 8 --dry-run --out "$W/dry-$method"
  "$PY" -c "
import json, sys
s = json.load(open(sys.argv[1]))['summary']
assert [h['task'] for h in s['head']] == ['A', 'B'] and s['head'][1]['end'] == 10, s['head']
assert s['student']['parameters'] > 0 and len(s['student']['feature_shape']) == 3, s['student']
assert s['schedule'].startswith('5 epochs, or more') and '1000 steps' in s['schedule'], s['schedule']
" "$W/out" && pass "--dry-run --method $method: the plan" || fail "--dry-run --method $method: $(head -c 300 "$W/out")"
  absent "--dry-run --method $method: nothing written" "$W/dry-$method"
  # The lines of --method's help: from "The objective:" to the next option.
  $A amalgamate --help | awk '/The objective:/ {on = 1; next} on && /^ *-/ {on = 0} on' |
    grep -q "^ *$method: [A-Za-z]" && pass "--help says what $method is" ||
    fail "--help has no summary of $method"
done
# The dry run says what decides the number of steps: --steps, or --epochs given alone.
for flags in "--steps 40:exactly 40 steps" "--epochs 3:3 epochs"; do
  ok "--dry-run ${flags%%:*}" $A amalgamate ${flags%%:*} --teacher "$W/a/teacher.pt" \
    --teacher "$W/b/teacher.pt" --student-width 8 --dry-run --out "$W/dry-schedule"
  "$PY" -c "
import json, sys
s = json.load(open(sys.argv[1]))['summary']['schedule']
assert s.startswith(sys.argv[2]) and (sys.argv[2] != '3 epochs' or s == '3 epochs'), s
" "$W/out" "${flags#*:}" && pass "--dry-run ${flags%%:*}: the schedule" ||
    fail "--dry-run ${flags%%:*}: $(head -c 300 "$W/out")"
done
# Every objective option x every method: a --dry-run that either applies the option (its value
# in the plan's objective) or refuses it in one line naming the option and the method. What each
# method has, written out here independently of the registry: routed targets (routed-kd,
# routed-cfl), a common space (routed-cfl, cfl), hints (fitnet).
"$PY" - "$AMALGAM" "$W/a/teacher.pt" "$W/b/teacher.pt" <<'PY' && pass "every objective option x method: applied or refused by name" || fail "objective option x method"
import json, subprocess, sys
amalgam, ta, tb = sys.argv[1:]
routed, space, hints = {"routed-kd", "routed-cfl"}, {"routed-cfl", "cfl"}, {"fitnet"}
methods = ["routed-kd", "routed-cfl", "kd", "cfl", "fitnet"]
# option, its arguments, where its value lands in the objective, the value, the methods it fits
options = [
    ("--temperature", ["2.5"], "temperature", 2.5, set(methods)),
    ("--lambda-kd", ["0.5"], "lambda_kd", 0.5, set(methods)),
    ("--lambda-cf", ["0.25"], None, 0.25, space | hints),
    ("--routing", ["teachers"], "routing.rule", "teachers", routed),
    ("--routing-score", ["max-prob"], "routing.score", "max-prob", routed),
    ("--energy-temperature", ["3"], "routing.energy_temperature", 3.0, routed),
    ("--task-prior", ["1,3"], "routing.prior", [1.0, 3.0], routed),
    ("--estimate-task-shares", [], "routing.estimate_prior", True, routed),
    ("--confident-share", ["0.3"], "routing.confident_share", 0.3, routed),
    ("--lambda-task", ["2"], "routing.lambda_task", 2.0, routed),
    ("--gate-forget", ["0.1"], "routing.gate_forget", 0.1, routed),
    ("--slice-weights", ["uniform"], "routing.slice_weights", "uniform", routed),
    ("--no-gate-calibration", [], "routing.calibrate_gate", False, routed),
    ("--no-routing-check", [], "routing.check", False, routed),
    ("--no-mmd", [], "common_space.use_mmd", False, space),
    ("--no-reconstruction", [], "common_space.use_reconstruction", False, space),
    ("--fixed-common-space", [], "common_space.fixed", True, space),
    ("--beta", ["2"], "common_space.beta", 2.0, space),
    ("--mmd-sigmas", ["0.5,2"], "common_space.sigmas", [0.5, 2.0], space),
    ("--common-channels", ["8"], "common_space.channels", 8, space),
    ("--extractor-blocks", ["1"], "common_space.extractor_blocks", 1, space),
    ("--feature-warmup", ["0.2"], "common_space.warmup", 0.2, space),
]
wrong = []
for method in methods:
    for name, args, path, value, fits in options:
        run = subprocess.run([amalgam, "--quiet", "amalgamate", "--teacher", ta, "--teacher", tb,
                              "--student-width", "8", "--dry-run", "--method", method, name, *args],
                             capture_output=True, text=True)
        errors = run.stderr.strip().splitlines()
        if method not in fits:
            want = f"amalgam: error: {name}: --method {method} "
            if run.returncode == 0 or len(errors) != 1 or not errors[0].startswith(want):
                wrong.append(f"{method} {name}: not refused by name ({run.returncode}, {errors})")
            continue
        if run.returncode != 0:
            wrong.append(f"{method} {name}: refused: {errors}")
            continue
        objective = json.loads(run.stdout)["config"]["options"]["objective"]
        if objective["method"] != method:
            wrong.append(f"{method} {name}: the plan's method is {objective['method']}")
        if path is None:  # --lambda-cf: the weight of whichever feature term the method has
            path = "common_space.weight" if method in space else "hints.weight"
        got = objective
        for key in path.split("."):
            got = got.get(key) if isinstance(got, dict) else None
        if got != value:
            wrong.append(f"{method} {name}: {path} is {got}, not {value}")
for w in wrong:
    print("   ", w)
print(f"    {len(methods)} methods x {len(options)} options, {len(wrong)} wrong")
sys.exit(1 if wrong else 0)
PY
ok "amalgamate routed-cfl (the common space)" $A amalgamate --teacher "$W/a/teacher.pt" \
  --teacher "$W/b/teacher.pt" --student resnet --student-width 8 --method routed-cfl $SMALL \
  --out "$W/s"
exists "student files" "$W/s/student.pt" "$W/s/student.json" "$W/s/student.block.pt"
grep '"type":"epoch"' "$W/s/metrics.jsonl" | grep -q '"task":' &&
  pass "the default method routes and logs its task term" ||
  fail "the default method routes and logs its task term"
"$PY" -c "
import json, sys
c = json.load(open(sys.argv[1]))
r, rule = c['routing_check'], c['options']['objective']['routing']['rule']
assert r['checked'] and r['images'] == 500, r
assert r['fall_back'] == (r['calibrated_routing'] <= r['concatenated_routing']), r
assert rule == ('concatenated' if r['fall_back'] else 'gate'), (r, rule)" "$W/s/config.json" &&
  pass "the routing is checked on the validation split and the rule recorded" ||
  fail "routing check on the validation split"
ok "amalgamate kd" $A amalgamate --method kd --teacher "$W/a/teacher.pt" \
  --teacher "$W/c/teacher.pt" --student mobilenetv2 --student-width 8 $SMALL --out "$W/k"
# Every term of every method reaches the progress line, metrics.jsonl and the report.
ok "amalgamate fitnet" $AMALGAM amalgamate --method fitnet --teacher "$W/a/teacher.pt" \
  --teacher "$W/b/teacher.pt" --student-width 8 $SMALL --log-every 5 --out "$W/f"
grep -q "amalgamate fitnet: epoch 1/1 loss .*(kd .* hint " "$W/err" &&
  grep -qE "^epoch 1/1 step .*\(kd .* hint " "$W/err" &&
  pass "fitnet progress and epoch lines show the hint term" ||
  fail "fitnet progress and epoch lines show the hint term"
grep '"type":"step"' "$W/f/metrics.jsonl" | head -1 | grep -q '"hint":' &&
  grep '"type":"epoch"' "$W/f/metrics.jsonl" | grep -q '"hint":' &&
  pass "fitnet metrics records hold the hint term" || fail "fitnet metrics records hold the hint term"
grep -q "<th>hint</th>" "$W/f/report.html" && pass "fitnet report shows the hint term" ||
  fail "fitnet report shows the hint term"
ok "eval teachers and student" $A eval --teacher "$W/a/teacher.pt" --teacher "$W/b/teacher.pt" \
  --student "$W/s/student.pt" --json "$W/eval.json"
grep -q "union" "$W/out" && pass "eval prints a union row" || fail "eval prints a union row"
grep -q '"student_acc"' "$W/eval.json" && pass "eval writes JSON" || fail "eval writes JSON"
grep -q "^Routing: which task" "$W/out" && grep -q "true task" "$W/out" &&
  grep -q '"oracle_union"' "$W/eval.json" && grep -q '"confusion"' "$W/eval.json" &&
  pass "eval prints and writes the routing diagnostics" ||
  fail "eval prints and writes the routing diagnostics"
ok "eval at bf16" $A eval --teacher "$W/a/teacher.pt" --teacher "$W/b/teacher.pt" \
  --student "$W/s/student.pt" --precision bf16 --json "$W/eval16.json"
"$PY" -c "
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
assert a['precision'] == 'fp32' and b['precision'] == 'bf16', (a['precision'], b['precision'])
for x, y in zip(a['tasks'], b['tasks']):
    for key in ('teacher_acc', 'student_acc'):
        assert abs(x[key] - y[key]) < 0.02, (key, x[key], y[key])" "$W/eval.json" "$W/eval16.json" &&
  pass "eval at bf16 scores within 2 points of fp32 and says so" || fail "eval at bf16"

# Bad input.
bad "an unknown eval precision" "--precision: expected fp32, bf16 or auto" $A eval \
  --teacher "$W/a/teacher.pt" --precision half --json "$W/eval_half.json"
absent "no eval JSON for an unknown precision" "$W/eval_half.json"
AM="$A amalgamate --teacher $W/a/teacher.pt --teacher $W/b/teacher.pt --limit 2000 --epochs 1"
bad "an unknown precision" "--precision: expected fp32, bf16 or auto" $A demo --quick \
  --precision fp8 --out "$W/demo_fp8"
absent "nothing written for an unknown precision" "$W/demo_fp8"
ok "teach at bf16" $A teach --task A=0-4 --arch resnet --width 8 $SMALL --precision bf16 \
  --out "$W/a_bf16"
bad "missing teacher" "no such model file" $A amalgamate --teacher "$W/none.pt" $SMALL --out "$W/x1"
bad "negative lr" "--lr" $AM --lr -1 --out "$W/x2"
absent "no output after refusal" "$W/x2/student.pt"
bad "zero batch size" "--batch-size" $AM --batch-size 0 --out "$W/x3"
bad "unknown architecture" "unknown architecture" $AM --student transformer --out "$W/x4"
bad "unknown method" "--method" $AM --method magic --out "$W/x5"
bad "a routed method with --routing none" "--routing none: a routed method needs a rule" \
  $AM --method routed-kd --routing none --out "$W/x5b"
absent "no output after --routing none" "$W/x5b"
bad "overlapping teachers" "more than one task" $A amalgamate --teacher "$W/b/teacher.pt" \
  --teacher "$W/c/teacher.pt" $SMALL --out "$W/x6"
bad "bad task" "not a class id" $A teach --task A=x-4 $SMALL --out "$W/x7"
bad "missing required option" "--task" $A teach --out "$W/x7b"
bad "cuda without cuda" "CUDA" $AM --device cuda --out "$W/x8"
bad "unwritable output" "cannot create directory" $AM --out /proc/amalgam-test/out
printf 'not a model' >"$W/junk.pt"
bad "not a model file" "sidecar" $A eval --teacher "$W/junk.pt"
mkdir -p "$W/empty" "$W/corrupt"
bad "empty data folder" "no image files" $AM --data "$W/empty" --out "$W/x9"
printf '\0\0\x08\x03\0\0\0\x0a\0\0\0\x1c\0\0\0\x1c\x01\x02' >"$W/corrupt/train-images-idx3-ubyte"
printf '\0\0\x08\x01\0\0\0\x0a\x01\x02\x03\x04\x05\x06\x07\x08\x09\x00' >"$W/corrupt/train-labels-idx1-ubyte"
bad "truncated IDX" "truncated" $AM --data "$W/corrupt" --out "$W/x10"
bad "validation larger than data" "--val-size" $AM --val-size 70000 --out "$W/x11"
bad "option given twice" "--epochs" $AM --epochs 2 --out "$W/x12"
bad "not a number" "--lr" $AM --lr fast --out "$W/x13"
bad "unknown routing rule" "--routing" $AM --routing oracle --out "$W/x14"
bad "confident share out of range" "--confident-share" $AM --confident-share 2 --out "$W/x15"
bad "task prior of the wrong length" "--task-prior" $AM --task-prior 1,2,3 --out "$W/x16"
bad "unknown option" "--colour" $AM --colour --out "$W/x14"
bad "unknown slice weighting" "--slice-weights" $AM --slice-weights kd --out "$W/x17"
bad "negative steps" "--steps: must be >= 0" $AM --steps -5 --out "$W/x17b"
# Misspellings are named with the name meant; usage errors exit 2, other errors 1.
bad "misspelt option" "--epoch: not an option of amalgamate; did you mean --epochs?" $AM \
  --epoch 1 --out "$W/x18"
$AM --epoch 1 --out "$W/x18" >/dev/null 2>&1
[ $? = 2 ] && pass "a usage error exits 2" || fail "a usage error exits 2"
bad "misspelt command" "'amalgamte' is not a command; did you mean amalgamate?" $A amalgamte
bad "no command" "a command is required: " $A
ok "--version" $AMALGAM --version
grep -q "^amalgam [0-9]" "$W/out" && pass "--version prints the version" || fail "--version output"
ok "--quiet after the command" $AMALGAM eval --teacher "$W/a/teacher.pt" --limit 500 --quiet

# --config: a JSON object of the command's options; every key and type checked, the file named.
printf '{"teacher": ["%s", "%s"], "student": "%s", "json": "%s"}' "$W/a/teacher.pt" \
  "$W/b/teacher.pt" "$W/s/student.pt" "$W/eval_cfg.json" >"$W/eval_cfg.json.in"
ok "eval --config" $A eval --config "$W/eval_cfg.json.in"
"$PY" -c "
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
assert a['tasks'] == b['tasks'], (a, b)" "$W/eval.json" "$W/eval_cfg.json" &&
  pass "eval --config scores as the command line does" || fail "eval --config scores differ"
printf '{"epoch": 1}' >"$W/c1.json"
bad "a misspelt --config key" "c1.json: unknown key \"epoch\" (not an option of amalgamate); did you mean epochs?" \
  $AM --config "$W/c1.json" --out "$W/x19"
printf '{"flip": 1}' >"$W/c2.json"
bad "a flag given a number in --config" "c2.json: \"flip\" must be true or false" \
  $AM --config "$W/c2.json" --out "$W/x19"
printf '{"teacher": {"path": "a.pt"}}' >"$W/c3.json"
bad "an object in --config" "c3.json: \"teacher\" must be a string, a number or a list of them" \
  $AM --config "$W/c3.json" --out "$W/x19"
printf '{"epochs": ' >"$W/c4.json"
bad "a truncated --config" "c4.json: not valid JSON" $AM --config "$W/c4.json" --out "$W/x19"
bad "a run's config.json as --config" "config.json: the record of a run, not a file of options; continue that run with --resume $W/s" \
  $AM --config "$W/s/config.json" --out "$W/x19"
absent "nothing written after a refused --config" "$W/x19"

# The quick start's main job, small: every phase runs through to its table and both reports.
ok "demo --quick" $A demo --quick --threads 2 --out "$W/demo" --json "$W/demo.json"
grep -q "union (task-agnostic)" "$W/out" && pass "demo --quick prints its table" ||
  fail "demo --quick printed no table"
# The figures depend on the processor class (float kernels round differently): the table and the
# JSON name the one they came from, as /proc/cpuinfo does.
cpu=$(grep -m1 "^model name" /proc/cpuinfo | sed 's/^[^:]*: *//')
grep -qF "on $cpu (family " "$W/out" && grep -qF "\"processor\": \"$cpu (family " "$W/demo.json" &&
  pass "demo --quick names its processor ($cpu)" || fail "demo --quick does not name $cpu"
exists "demo --quick: each student's report" "$W/demo/students/kd/report.html" \
  "$W/demo/students/routed-kd/report.html"

summary cli
