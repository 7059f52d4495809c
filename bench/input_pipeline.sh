#!/usr/bin/env bash
# Benchmark: amalgam's input path (decode + resize to 224 + float collate, build/amalgam_input_bench)
# against PyTorch's DataLoader + torchvision.transforms.v2 (decode_jpeg and PIL variants) on the
# same 500x375 JPEGs, at 1 and 2 workers, in one run: the runs alternate, each is repeated, and
# the median images/s of each is reported with amalgam's ratio to the faster DataLoader.
#
# usage: bench/input_pipeline.sh [--images N] [--repeats R] [--json FILE]
#   the images are cut from Debian's mate-backgrounds photographs (installed when missing)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
BENCH=${AMALGAM_INPUT_BENCH:-$ROOT/build/amalgam_input_bench}
IMAGES=2000 REPEATS=3 JSON=""
while [ $# -gt 0 ]; do
  case "$1" in
    --images) IMAGES=$2; shift 2 ;;
    --repeats) REPEATS=$2; shift 2 ;;
    --json) JSON=$2; shift 2 ;;
    *) echo "bench/input_pipeline.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$BENCH" ] || { echo "bench/input_pipeline.sh: $BENCH missing: bash scripts/setup.sh" >&2; exit 1; }
if [ ! -d /usr/share/backgrounds/mate/nature ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mate-backgrounds
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$PY" "$ROOT/bench/input_pipeline.py" make "$T/images" "$IMAGES"
cat "$T"/images/* >/dev/null  # every run reads from the page cache

runs=()
for _ in $(seq "$REPEATS"); do
  for workers in 1 2; do
    for decoder in turbojpeg stb; do
      "$BENCH" --data "$T/images" --threads $workers --decoder $decoder >>"$T/amalgam.jsonl"
    done
    for decoder in torchvision pil; do
      "$PY" "$ROOT/bench/input_pipeline.py" time "$T/images" $workers $decoder >>"$T/torch.jsonl"
    done
  done
done
"$PY" - "$T/amalgam.jsonl" "$T/torch.jsonl" "$JSON" <<'PY'
import json, statistics, sys, platform
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows.setdefault((f"amalgam ({r['decoder']})", r["threads"]), []).append(r["images_per_s"])
for line in open(sys.argv[2]):
    r = json.loads(line)
    rows.setdefault((f"DataLoader ({r['decoder']})", r["workers"]), []).append(r["images_per_s"])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
result = {"processor": cpu, "runs": {f"{k[0]}, {k[1]} worker(s)": v for k, v in rows.items()}}
print(f"images/s, median of {len(next(iter(rows.values())))} runs, decode + resize 224 + float collate ({cpu})")
for workers in (1, 2):
    medians = {name: statistics.median(v) for (name, w), v in rows.items() if w == workers}
    best = max(v for k, v in medians.items() if k.startswith("DataLoader"))
    for name, v in sorted(medians.items()):
        print(f"  {workers} worker(s)  {name:28s} {v:8.1f}")
    ratio = medians["amalgam (turbojpeg)"] / best
    print(f"  {workers} worker(s)  amalgam / faster DataLoader  {ratio:.2f}x")
    result[f"workers_{workers}"] = {"median_images_per_s": medians, "amalgam_over_best_dataloader": ratio}
if sys.argv[3]:
    json.dump(result, open(sys.argv[3], "w"), indent=2)
PY
