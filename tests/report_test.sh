#!/usr/bin/env bash
# The report as a person sees it: a short amalgamation writes a run directory, and headless
# Chromium (Debian's) renders report.html; the rendered page must hold drawn charts.
set -u
AMALGAM=$(realpath "${1:?usage: report_test.sh path/to/amalgam}")
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib.sh"
cd "$W" || exit 1
A="$AMALGAM --quiet"
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)

ok "teacher A" $A teach --task A=0-4 --arch resnet --width 8 --limit 1500 --val-size 500 --epochs 1 --out ta
ok "teacher B" $A teach --task B=5-9 --arch vgg --width 8 --limit 1500 --val-size 500 --epochs 1 --out tb
ok "amalgamate writes a run directory" $A amalgamate --teacher ta/teacher.pt --teacher tb/teacher.pt \
  --student-width 8 --limit 2000 --val-size 500 --epochs 2 --batch-size 64 --log-every 5 \
  --method routed-cfl --out run
exists "run directory files" run/config.json run/metrics.jsonl run/checkpoint.pt run/student.pt \
  run/embedding.json run/report.html
grep -q '"type":"step"' run/metrics.jsonl && grep -q '"type":"epoch"' run/metrics.jsonl &&
  pass "metrics.jsonl has step and epoch records" || fail "metrics.jsonl records"
ok "amalgam report rewrites it" $A report run
grep -q "principal component 1" run/report.html && grep -q '"legend":\["0","1",' run/embedding.json &&
  [ "$(grep -o 'r="4" fill=' run/report.html | wc -l)" -ge 10 ] &&
  pass "feature maps have axes and a legend of the classes" || fail "feature map axes or legend"
ok "a run shorter than --log-every" $A amalgamate --teacher ta/teacher.pt --teacher tb/teacher.pt \
  --student-width 8 --limit 300 --val-size 100 --epochs 2 --log-every 1000 --out short
! grep -q '"type":"step"' short/metrics.jsonl && grep -q '<polyline' short/report.html &&
  pass "its loss chart is drawn from the epochs" || fail "no loss curve without step records"

if [ -z "$CHROMIUM" ]; then
  fail "chromium is not installed (scripts/test.sh installs Debian's chromium)"
else
  B=(--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --window-size=1200,1800)
  timeout 120 "$CHROMIUM" "${B[@]}" --dump-dom "file://$W/run/report.html" >dom.html 2>/dev/null
  svgs=$(grep -o '<svg' dom.html | wc -l)
  lines=$(grep -oE '<polyline[^>]* points="[0-9]' dom.html | wc -l)
  dots=$(grep -o '<circle' dom.html | wc -l)
  if [ "$svgs" -ge 6 ] && [ "$lines" -ge 6 ] && [ "$dots" -ge 500 ]; then
    pass "rendered DOM: $svgs charts, $lines drawn lines, $dots points"
  else
    fail "rendered DOM: $svgs charts, $lines drawn lines, $dots points"
  fi
  timeout 120 "$CHROMIUM" "${B[@]}" --screenshot="$W/report.png" "file://$W/run/report.html" \
    >/dev/null 2>&1
  # A blank page compresses to a few KB; charts and maps make it far larger.
  size=$(stat -c %s report.png 2>/dev/null || echo 0)
  [ "$size" -gt 50000 ] && pass "screenshot of the report ($size bytes)" ||
    fail "screenshot of the report ($size bytes)"
  if [ -n "${REPORT_SCREENSHOT:-}" ]; then cp report.png "$REPORT_SCREENSHOT"; fi
fi

summary report
