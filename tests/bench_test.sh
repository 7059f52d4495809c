#!/usr/bin/env bash
# bench/run --quick with the built amalgam: the JSON keeps the keys it always wrote, names the
# precision timed, pairs it with the reference at FP32 and at the same precision, and the FP32
# first steps agree bitwise with the PyTorch reference (same weights, batches and kernels). The
# timings themselves are not asserted (a busy CI machine), only that they were taken.
set -euo pipefail
AMALGAM=${1:?usage: bench_test.sh path/to/amalgam}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
AMALGAM="$AMALGAM" bash "$ROOT/bench/run" --quick --threads 2 --json "$W/b.json" >"$W/stdout"
grep -q "same precision" "$W/stdout" || { echo "FAIL: no same-precision ratio printed"; exit 1; }
AMALGAM="$AMALGAM" bash "$ROOT/bench/run" --quick --precision fp16 >"$W/bad.out" 2>&1 && {
  echo "FAIL: bench/run --precision fp16 accepted"; exit 1; }
grep -q -- "--precision" "$W/bad.out" || { echo "FAIL: bad precision not named"; cat "$W/bad.out"; exit 1; }
/usr/bin/python3 - "$W/b.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
failures = []
for key in ["amalgam_epoch_s", "reference_epoch_s", "ratio", "first_steps_max_rel_diff",
            "peak_gflops", "achieved_gflops", "peak_fraction", "amalgam_steady_epoch_s",
            "amalgam_teacher_cache_s", "precision", "same_precision_ratio",
            "reference_same_precision_epoch_s", "amalgam_fp32_epoch_s", "fp32_ratio",
            "first_step_precision_max_rel_diff"]:
    if key not in d:
        failures.append(f"key {key} missing")
if not failures:
    if d["precision"] not in ("fp32", "bf16"):
        failures.append(f"precision {d['precision']}")
    if d["first_steps_max_rel_diff"] != 0.0:
        failures.append(f"FP32 first steps differ from the reference: {d['first_steps_max_rel_diff']}")
    # Step 2 follows the first Adam update that rounds apart (lerp_ vs mul_+add_ moments: <= 11u of
    # each weight's step, moving a term by <= 11u lr ||grad||_1, with lr ||grad||_1 <= 10x the term
    # here: 9.8 for recon), and its float32 sums then round apart as in another order: <= n*u of a
    # term, n up to BatchNorm's statistics over a batch of 28 x 28 images. So (11 * 10 + n)u.
    if not d["later_steps_max_rel_diff"] <= (11 * 10 + d["batch_size"] * 28 * 28) * 2**-24:
        failures.append(f"FP32 later steps differ from the reference: {d['later_steps_max_rel_diff']}")
    # The same double division of the same (JSON round-tripped) seconds: 1e-9 only absorbs a rounding.
    if abs(d["ratio"] - d["amalgam_epoch_s"] / d["reference_epoch_s"]) > 1e-9:
        failures.append("ratio is not default-precision amalgam over the FP32 reference")
    if not 0 < d["peak_fraction"] < 1.5:
        failures.append(f"peak fraction {d['peak_fraction']}")
    if d["precision"] == "bf16":
        if "peak_bf16" not in d or d["peak_gflops"] != d["peak_bf16"]["peak_gflops"]:
            failures.append("bf16 run measured against a peak other than bf16's")
        if d["reference_same_precision_epoch_s"] == d["reference_epoch_s"]:
            failures.append("no bf16 reference timing")
        # bf16 keeps float32 weights and losses: the first step's terms stay close to FP32's.
        if not 0 < d["first_step_precision_max_rel_diff"] < 0.05:
            failures.append(f"bf16 first step differs from fp32 by {d['first_step_precision_max_rel_diff']}")
        if "convolution_gflops" not in d.get("profile", {}):
            failures.append("no profile of the reference's steps")
    elif d["same_precision_ratio"] != d["ratio"]:
        failures.append("fp32 run with a same-precision ratio other than its ratio")
print("bench:", d["precision"], "ratio %.2f same-precision %.2f fp32 %.2f" %
      (d["ratio"], d["same_precision_ratio"], d["fp32_ratio"]))
if failures:
    print("FAIL: " + "; ".join(failures))
    sys.exit(1)
PY
echo "bench_test: OK"
