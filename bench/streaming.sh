#!/usr/bin/env bash
# Benchmark: amalgamate on folders of 224-pixel photographs too large to hold decoded, streamed
# from disk. Two torchvision ResNet-18 teachers into a ResNet-18 student (bench/resnet18_setup.py),
# batch 64, on folders of 20,000 and 200,000 500x375 JPEGs (hard links to a few thousand distinct
# ones cut from Debian's mate-backgrounds photographs). For each size: peak RSS and wall time of
# `amalgamate --steps 20` (/usr/bin/time -v), and the time from the start to the end of the first
# optimisation step (a `--steps 1` run).
#
# usage: bench/streaming.sh [--sizes "20000 200000"] [--distinct N] [--steps S] [--json FILE]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
AMALGAM=${AMALGAM:-$ROOT/build/amalgam}
SIZES="20000 200000" DISTINCT=2000 STEPS=20 JSON="" EXTRA=""
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) SIZES=$2; shift 2 ;;
    --distinct) DISTINCT=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --json) JSON=$2; shift 2 ;;
    --) shift; EXTRA="$*"; break ;;
    *) echo "bench/streaming.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ ! -d /usr/share/backgrounds/mate/nature ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mate-backgrounds
fi
T=${BENCH_DIR:-$(mktemp -d)}
[ -n "${BENCH_DIR:-}" ] || trap 'rm -rf "$T"' EXIT
[ -d "$T/distinct" ] || "$PY" "$ROOT/bench/input_pipeline.py" make "$T/distinct" "$DISTINCT"
[ -f "$T/models/student.pt" ] || "$PY" "$ROOT/bench/resnet18_setup.py" "$T/models"
M=$T/models
RUN="--teacher $M/a.pt:layer4 --teacher $M/b.pt:layer4 --student $M/student.pt:layer4 --batch-size 64 $EXTRA"
: >"$T/results.jsonl"
for n in $SIZES; do
  if [ ! -d "$T/set$n" ]; then  # hard links, 1,000 to a folder (distinct paths, one inode each)
    "$PY" - "$T/distinct" "$T/set$n" "$n" <<'PY'
import os, sys
src, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
files = sorted(os.listdir(src))
for i in range(n):
    folder = f"{out}/{i // 1000:04d}"
    if i % 1000 == 0:
        os.makedirs(folder)
    os.link(f"{src}/{files[i % len(files)]}", f"{folder}/{i:07d}.jpg")
PY
  fi
  for steps in 1 "$STEPS"; do
    rm -rf "$T/run"
    start=$(date +%s.%N)
    # The first checkpoint (--checkpoint-every 1) appears when the first step has ended.
    ( while [ ! -e "$T/run/checkpoint.pt" ]; do sleep 0.05; done; date +%s.%N >"$T/first" ) &
    poller=$!
    /usr/bin/time -v "$AMALGAM" amalgamate $RUN --data "$T/set$n" --steps "$steps" --out "$T/run" \
      --checkpoint-every $((steps == 1 ? 1 : 0)) >"$T/out" 2>"$T/err" || { tail -n 5 "$T/err"; exit 1; }
    kill $poller 2>/dev/null || true
    wait $poller 2>/dev/null || true
    rss=$(grep "Maximum resident set size" "$T/err" | awk '{print $NF}')
    wall=$(grep "Elapsed (wall clock)" "$T/err" | awk '{print $NF}')
    first=null
    [ "$steps" -eq 1 ] && [ -s "$T/first" ] && first=$(echo "$(cat "$T/first") - $start" | bc)
    echo "{\"images\": $n, \"steps\": $steps, \"peak_rss_kib\": $rss, \"wall\": \"$wall\", \"first_step_s\": $first}" | tee -a "$T/results.jsonl"
    grep -E "transfer set:|streamed transfer|teachers run|routing by|waiting for data" "$T/err" | sed 's/^/    /' || true
    rm -f "$T/first"
  done
done
if [ -n "$JSON" ]; then
  "$PY" - "$T/results.jsonl" "$JSON" <<'PY'
import json, sys
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
rows = [json.loads(l) for l in open(sys.argv[1])]
json.dump({"processor": cpu, "command": "bench/streaming.sh", "runs": rows}, open(sys.argv[2], "w"), indent=1)
PY
fi
