#!/usr/bin/env bash
# Data-parallel scaling on one host: the same amalgamation (the demo's setup: Fashion-MNIST,
# teachers A = classes 0-4 and B = 5-9, resnet student of width 20, CFL with lambda_cf 1,
# batch 128) as 1 rank x 2 threads, 2 ranks x 1 thread, and 1 rank x 1 thread for reference.
# usage: bench/distributed_scaling.sh [IMAGES] [EPOCHS] [JSON]   (defaults 10000 2 stdout)
# Run it alone: a second job on the machine's 2 cores would take the cores the ranks measure.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGES=${1:-10000}
EPOCHS=${2:-2}
JSON=${3:-}
A=build/amalgam
OUT=runs/scaling
mkdir -p "$OUT"
if [ -s runs/demo/teachers/A.pt ] && [ -s runs/demo/teachers/B.pt ]; then
  TA=runs/demo/teachers/A.pt TB=runs/demo/teachers/B.pt
else  # no demo teachers yet: quick ones (accuracy does not matter for timing)
  $A --quiet teach --task A=0-4 --arch resnet --width 16 --limit 6000 --epochs 1 --out "$OUT/ta"
  $A --quiet teach --task B=5-9 --arch vgg --width 16 --limit 6000 --epochs 1 --out "$OUT/tb"
  TA=$OUT/ta/teacher.pt TB=$OUT/tb/teacher.pt
fi
RUN="amalgamate --teacher $TA --teacher $TB --student resnet --student-width 20 --method routed-cfl
     --limit $IMAGES --val-size 0 --epochs $EPOCHS --batch-size 128 --log-every 0"

declare -A WALL
for layout in 1x2 2x1 1x1; do
  case $layout in
    1x2) X="--threads 2" ;;
    2x1) X="--nproc 2 --threads 1" ;;
    1x1) X="--threads 1" ;;
  esac
  rm -rf "${OUT:?}/$layout"
  start=$(date +%s.%N)
  $A --quiet $RUN $X --out "$OUT/$layout" >/dev/null
  WALL[$layout]=$(echo "$(date +%s.%N) - $start" | bc)
done

/usr/bin/python3 - "$OUT" "$IMAGES" "$EPOCHS" "${WALL[1x2]}" "${WALL[2x1]}" "${WALL[1x1]}" "$JSON" <<'PY'
import json, sys
out, images, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
walls = dict(zip(["1x2", "2x1", "1x1"], map(float, sys.argv[4:7])))
rows = {}
for layout, wall in walls.items():
    epochs_rec = [json.loads(l) for l in open(f"{out}/{layout}/metrics.jsonl") if '"epoch"' in l]
    epochs_rec = [e for e in epochs_rec if e.get("type") == "epoch"]
    rows[layout] = {"wall_s": round(wall, 2),
                    "epoch_s": [round(e["seconds"], 2) for e in epochs_rec],
                    "images_per_s": [round(e["images_per_second"], 1) for e in epochs_rec],
                    "final_loss": round(epochs_rec[-1]["total"], 4)}
result = {"images": images, "epochs": epochs, "batch_size": 128, "runs": rows,
          "speedup_2x1_over_1x2": round(rows["1x2"]["epoch_s"][-1] / rows["2x1"]["epoch_s"][-1], 3)}
text = json.dumps(result, indent=2)
print(text)
if sys.argv[7]:
    open(sys.argv[7], "w").write(text + "\n")
PY
