"""Time to accuracy: seconds of training until a run's student reaches the FP32 run's final
validation accuracy minus a tolerance (issue 17: 0.3 points), read from the metrics.jsonl of two
run directories trained the same way at two precisions (amalgamate, or a demo's students/NAME).

usage: python3 time_to_accuracy.py FP32_RUN OTHER_RUN [--tolerance 0.003] [--json OUT]

Accuracy is each epoch's validation record: the mean over the tasks, and the union separately.
Time is the sum of the epochs' training seconds up to that epoch (epoch granularity).
"""
import argparse
import json
import sys


def epochs(run_dir):
    rows = []
    with open(f"{run_dir}/metrics.jsonl") as f:
        for line in f:
            r = json.loads(line)
            if r.get("type") == "epoch" and "val" in r:
                rows.append(r)
    if not rows:
        sys.exit(f"time_to_accuracy: {run_dir}/metrics.jsonl has no epoch with validation scores")
    return rows


def task_mean(val):
    tasks = [v for k, v in val.items() if k not in ("union", "routing")]
    return sum(tasks) / len(tasks)


def reached(rows, metric, target):
    elapsed = 0.0
    for r in rows:
        elapsed += r["seconds"]
        if metric(r["val"]) >= target:
            return {"epoch": r["epoch"], "seconds": elapsed}
    return None


ap = argparse.ArgumentParser()
ap.add_argument("fp32_run")
ap.add_argument("other_run")
ap.add_argument("--tolerance", type=float, default=0.003)
ap.add_argument("--json")
args = ap.parse_args()
base, other = epochs(args.fp32_run), epochs(args.other_run)
out = {"tolerance": args.tolerance}
for name, metric in [("task_mean", task_mean), ("union", lambda v: v.get("union", float("nan")))]:
    target = metric(base[-1]["val"]) - args.tolerance
    out[name] = {"target": target,
                 "fp32": reached(base, metric, target),
                 "other": reached(other, metric, target),
                 "fp32_final": metric(base[-1]["val"]),
                 "other_final": metric(other[-1]["val"])}
    a, b = out[name]["fp32"], out[name]["other"]
    speed = f"{a['seconds'] / b['seconds']:.2f}x" if a and b else "n/a"
    print(f"{name:9s} target {100 * target:.2f}%: fp32 "
          f"{'%.0f s (epoch %d)' % (a['seconds'], a['epoch']) if a else 'never'}, other "
          f"{'%.0f s (epoch %d)' % (b['seconds'], b['epoch']) if b else 'never'}; speed-up {speed}; "
          f"final {100 * out[name]['fp32_final']:.2f} vs {100 * out[name]['other_final']:.2f}")
if args.json:
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
