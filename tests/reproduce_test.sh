#!/usr/bin/env bash
# `amalgam reproduce --quick` on one benchmark: the table has every row, every row trained
# (above chance on every task), the probes ran, and report.html charts every row. Then the
# cross-domain benchmark (digits + clothing) with two rows: both domains' tasks, a 20-class union,
# every split holding both domains, scored on validation; then the small-data set-up with
# TorchScript teachers at 3x32x32 RGB. The numbers themselves are not asserted.
set -euo pipefail
AMALGAM=${1:?usage: reproduce_test.sh path/to/amalgam}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export PYTHONPATH="$(cd "$(dirname "$0")" && pwd)${PYTHONPATH:+:$PYTHONPATH}"  # reproduce_rows.py
"$AMALGAM" --quiet reproduce --quick --seeds 1 --benchmark fmnist-2 --out "$W/runs" \
  --json "$W/r.json" --markdown "$W/r.md" >"$W/stdout"
grep -q "| routed-kd (default) |" "$W/stdout" || { echo "FAIL: no default row printed"; exit 1; }
cmp -s "$W/stdout" "$W/r.md" || { echo "FAIL: --markdown differs from what was printed"; exit 1; }
bars=$(grep -o '<rect' "$W/runs/report.html" | wc -l)
[ "$bars" -ge 27 ] || { echo "FAIL: report.html has $bars bars, expected one per row and task"; exit 1; }
python3 - "$W/r.json" <<'PY'
import json, math, sys
d = json.load(open(sys.argv[1]))
failures = []
expected = ["Teachers", "Teachers, calibrated routing", "Supervised on labels",
            "routed-kd (default)", "routed-cfl", "kd", "cfl", "fitnet", "cfl, no-mmd",
            "cfl, no-recon", "cfl, fixed-space", "routed-kd, teachers", "routed-kd, uniform",
            "Default student from that teacher alone", "The same with its share of the steps"]
(b,) = d["benchmarks"]
names = [r["name"] for r in b["rows"]]
if names != expected:
    failures.append(f"rows {names}")
chance = [1 / len(t["classes"]) for t in b["tasks"]]
for r in b["rows"]:
    if r["name"] == "Teachers, calibrated routing":  # a union and routing row only
        if not (0.1 < r["union_acc"][0] <= 1 and 0.5 <= r["routing_acc"][0] <= 1):
            failures.append(f"{r['name']}: {r['union_acc']} {r['routing_acc']}")
        continue
    if len(r["task_acc"]) != 1 or len(r["task_acc"][0]) != len(b["tasks"]):
        failures.append(f"{r['name']}: task_acc shape {r['task_acc']}")
        continue
    for acc, c in zip(r["task_acc"][0], chance):
        if acc is None or not (c + 0.1 < acc <= 1):
            failures.append(f"{r['name']}: accuracy {acc} not above chance {c:.2f} + 0.1")
    if r["params"] <= 0:
        failures.append(f"{r['name']}: params {r['params']}")
if len(b["probes"]) != len(b["tasks"]):
    failures.append("probes missing")
for p in b["probes"]:
    for key in ("student_common", "teacher_common", "teacher_raw"):
        if not (0.3 < p[key] <= 1):
            failures.append(f"probe {p['task']} {key} = {p[key]}")
# Each row paired with KD by seed: one seed gives the mean difference only (no interval, no p).
kd = next(r for r in b["rows"] if r["name"] == "kd")
cfl = next(r for r in b["rows"] if r["name"] == "routed-kd (default)")
diff = b.get("cfl_minus_kd", {})
for i, t in enumerate(b["tasks"]):
    e = diff.get(t["name"], {})
    # 100a - 100b there, 100(a - b) here: a few double roundings of percents (~1e-14).
    want = 100 * (cfl["task_acc"][0][i] - kd["task_acc"][0][i])
    if e.get("pairs") != 1 or abs(e.get("mean", 1e9) - want) > 1e-9 or e.get("p") is not None:
        failures.append(f"cfl_minus_kd {t['name']}: {e} (expected mean {want})")
if "union" not in diff:
    failures.append("cfl_minus_kd has no union")
unpaired = ("kd", "Teachers", "Teachers, calibrated routing", "Supervised on labels")
if sorted(b.get("minus_kd", {})) != sorted(n for n in names if n not in unpaired):
    failures.append(f"minus_kd rows {sorted(b.get('minus_kd', {}))}")
for f in failures:
    print("FAIL", f)
print(f"reproduce: {len(b['rows'])} rows, {len(b['probes'])} probes, {len(failures)} failures")
sys.exit(1 if failures else 0)
PY

# Scored on the validation split (how settings are chosen): the tables and the JSON say so.
"$AMALGAM" --quiet reproduce --quick --seeds 1 --benchmark cross-domain --rows kd,routed-kd --no-probes \
  --split val --out "$W/cross" --json "$W/c.json" --markdown "$W/c.md" >/dev/null
grep -q "^Validation accuracy (%)" "$W/c.md" || { echo "FAIL: c.md does not name the split"; exit 1; }
grep -q "Validation accuracy (%)" "$W/cross/report.html" ||
  { echo "FAIL: report.html does not name the split"; exit 1; }
python3 - "$W/c.json" <<'PY'
import json, sys
from reproduce_rows import check_student_rows
d = json.load(open(sys.argv[1]))
failures = []
(b,) = d["benchmarks"]
if b["name"] != "cross-domain":
    failures.append(f"benchmark {b['name']}")
tasks = {t["name"]: t["classes"] for t in b["tasks"]}
if tasks != {"digits": list(range(10, 20)), "clothing": list(range(10))}:
    failures.append(f"tasks {tasks}")
check_student_rows(b, 0.2, failures)  # 10 classes a task: chance + 0.1; a 20-class union
if d["settings"]["split"] != "val":
    failures.append(f"settings split {d['settings'].get('split')}")
if d["settings"]["cross_domain"]["clothing_per_digit"] != 3:
    failures.append(f"settings {d['settings'].get('cross_domain')}")
for f in failures:
    print("FAIL", f)
print(f"reproduce cross-domain: {len(b['rows'])} rows, {len(failures)} failures")
sys.exit(1 if failures else 0)
PY
# The small-data set-up: teachers that read 3x32x32 RGB, handed over as TorchScript files with
# sidecars and loaded back at their feature layer; 3,000 transfer images at most.
"$AMALGAM" --quiet reproduce --quick --seeds 1 --benchmark small-rgb --rows kd,routed-kd --no-probes \
  --out "$W/small" --json "$W/s.json" >/dev/null
for f in A.torchscript.pt A.torchscript.json B.torchscript.pt B.torchscript.json; do
  [ -s "$W/small/small-rgb/teachers/$f" ] || { echo "FAIL: small-rgb wrote no teachers/$f"; exit 1; }
done
python3 - "$W/s.json" "$W/small/small-rgb/teachers/A.torchscript.json" <<'PY'
import json, sys
from reproduce_rows import check_student_rows
d = json.load(open(sys.argv[1]))
sidecar = json.load(open(sys.argv[2]))
failures = []
(b,) = d["benchmarks"]
if [t["name"] for t in b["tasks"]] != ["A", "B"]:
    failures.append(f"tasks {b['tasks']}")
if sidecar.get("channels") != 3 or sidecar.get("input_size") != [32, 32] or sidecar.get("task") != "A":
    failures.append(f"sidecar {sidecar}")
if d["settings"]["small_rgb"]["transfer_images"] != 3000:
    failures.append(f"settings {d['settings'].get('small_rgb')}")
check_student_rows(b, 0.3, failures)  # 5 classes a task: chance + 0.1
for f in failures:
    print("FAIL", f)
print(f"reproduce small-rgb: {len(b['rows'])} rows, {len(failures)} failures")
sys.exit(1 if failures else 0)
PY
"$AMALGAM" --quiet reproduce --quick --benchmark cross-domian --out "$W/bad" 2>"$W/err" &&
  { echo "FAIL: a misspelt benchmark was accepted"; exit 1; }
grep -q "no benchmark called 'cross-domian'" "$W/err" || { echo "FAIL: $(cat "$W/err")"; exit 1; }
[ ! -e "$W/bad" ] || { echo "FAIL: a refused reproduce wrote $W/bad"; exit 1; }
"$AMALGAM" --quiet reproduce --quick --split train --out "$W/bad" 2>"$W/err" &&
  { echo "FAIL: --split train was accepted"; exit 1; }
grep -q "split: expected test or val, got 'train'" "$W/err" || { echo "FAIL: $(cat "$W/err")"; exit 1; }
[ ! -e "$W/bad" ] || { echo "FAIL: a refused reproduce wrote $W/bad"; exit 1; }
# A missing digits table is refused before any benchmark runs (all three are asked for).
"$AMALGAM" --quiet reproduce --quick --digits "$W/none.csv.gz" --out "$W/bad" 2>"$W/err" &&
  { echo "FAIL: a missing digits table was accepted"; exit 1; }
grep -q "none.csv.gz: no digits table here" "$W/err" || { echo "FAIL: $(cat "$W/err")"; exit 1; }
[ ! -e "$W/bad" ] || { echo "FAIL: a refused reproduce wrote $W/bad"; exit 1; }
