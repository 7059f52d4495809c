#!/usr/bin/env bash
# Benchmark: amalgam's input path (decode + resize to 224 + float collate, build/amalgam_input_bench)
# against PyTorch's DataLoader + torchvision.transforms.v2 (decode_jpeg and PIL variants) on the
# same 500x375 JPEGs (amalgam also from tar shards of them, written by `amalgam shard`), at 1 and
# 2 workers, in one run, for two views: the whole image resized to 224, and the training view
# (RandomResizedCrop 224 + flip + ImageNet normalisation). The runs alternate, each is repeated,
# and the median images/s of each is reported with amalgam's ratio to the faster DataLoader.
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
"$ROOT/build/amalgam" -q shard --data "$T/images" --out "$T/shards" --images-per-shard 500 >/dev/null
cat "$T"/images/* "$T"/shards/* >/dev/null  # every run reads from the page cache

for _ in $(seq "$REPEATS"); do
  for workers in 1 2; do
    for decoder in turbojpeg stb; do
      "$BENCH" --data "$T/images" --threads $workers --decoder $decoder >>"$T/amalgam.jsonl"
    done
    "$BENCH" --data "$T"/shards/*.tar --threads $workers >>"$T/amalgam.jsonl"
    "$BENCH" --data "$T/images" --threads $workers --crop >>"$T/amalgam.jsonl"
    for decoder in torchvision pil; do
      for view in resize crop; do
        "$PY" "$ROOT/bench/input_pipeline.py" time "$T/images" $workers $decoder $view >>"$T/torch.jsonl"
      done
    done
  done
done
"$PY" - "$T/amalgam.jsonl" "$T/torch.jsonl" "$JSON" <<'PY'
import json, statistics, sys, platform
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    source = ", tar shards" if r.get("source") == "shards" else ""
    name = f"amalgam ({r['decoder']}{source})"
    rows.setdefault((r.get("view", "resize"), name, r["threads"]), []).append(r["images_per_s"])
for line in open(sys.argv[2]):
    r = json.loads(line)
    rows.setdefault((r.get("view", "resize"), f"DataLoader ({r['decoder']})", r["workers"]), []).append(r["images_per_s"])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
result = {"processor": cpu, "runs": {f"{k[1]}, {k[0]}, {k[2]} worker(s)": v for k, v in rows.items()}}
print(f"images/s, median of {len(next(iter(rows.values())))} runs, batches of 64 ({cpu})")
for view, what in (("resize", "decode + resize 224 + float"),
                   ("crop", "decode + RandomResizedCrop 224 + flip + normalise")):
    print(what)
    for workers in (1, 2):
        medians = {name: statistics.median(v) for (vw, name, w), v in rows.items() if w == workers and vw == view}
        best = max(v for k, v in medians.items() if k.startswith("DataLoader"))
        for name, v in sorted(medians.items()):
            print(f"  {workers} worker(s)  {name:34s} {v:8.1f}")
        ratios = {name: v / best for name, v in medians.items() if name.startswith("amalgam (turbojpeg")}
        print(f"  {workers} worker(s)  / faster DataLoader: " +
              ", ".join(f"{name} {r:.2f}x" for name, r in sorted(ratios.items())))
        result[f"{view}_workers_{workers}"] = {"median_images_per_s": medians,
                                               "amalgam_over_best_dataloader": ratios}
if sys.argv[3]:
    json.dump(result, open(sys.argv[3], "w"), indent=2)
PY
