#!/usr/bin/env bash
# A transfer folder streamed from disk (--image-memory 0: an index of files decoded per batch)
# trains the same student as the folder decoded into memory, bitwise, whatever the number of
# decode threads; with RandomResizedCrop (drawn per image, cropped from the file's full size) the
# same across decode threads and across SIGKILL + --resume mid-epoch; a bad file mid-stream stops
# the run with a one-line error naming it (nothing written), or is replaced and named under skip.
set -u
AMALGAM=$(realpath "${1:?usage: streaming_test.sh path/to/amalgam}")
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib.sh"
trap 'kill -KILL ${pid:-} 2>/dev/null; rm -rf "$W"' EXIT
cd "$W" || exit 1
A="$AMALGAM --quiet"
make_fixtures "make_stream_folder.py"

same() {  # same NAME A.pt B.pt: every parameter and buffer bitwise equal
  if "$PY" "$HERE/fixtures/weight_difference.py" "$2" "$3" 0 >"$W/diff" 2>&1; then pass "$1"
  else fail "$1: $(tail -n 1 "$W/diff")"; fi
}

ok "teacher A" $A teach --task A=0-4 --arch resnet --width 8 --limit 1500 --val-size 500 --epochs 1 --out ta
ok "teacher B" $A teach --task B=5-9 --arch vgg --width 8 --limit 1500 --val-size 500 --epochs 1 --out tb
# The default method: the routing's pass over the transfer set streams too.
RUN="--teacher ta/teacher.pt --teacher tb/teacher.pt --data imgs --student-width 8 --batch-size 32
     --epochs 2 --threads 1 --checkpoint-every 4"

ok "in memory" $AMALGAM amalgamate $RUN --out mem
grep -q "streams from disk" "$W/err" && fail "a 480-image folder is held in memory by default" ||
  pass "a 480-image folder is held in memory by default"
ok "streamed, 1 decode thread" $AMALGAM amalgamate $RUN --image-memory 0 --workers 1 --out s1
grep -q "so they stream from disk, each batch decoded on 1 thread" "$W/err" &&
  pass "the log says the set streams, and on how many threads" ||
  fail "the log says the set streams: $(grep 'transfer set' "$W/err")"
same "streamed = in memory, bitwise" mem/student.pt s1/student.pt
ok "streamed, 3 decode threads" $A amalgamate $RUN --image-memory 0 --workers 3 --out s3
same "3 decode threads = 1, bitwise" s1/student.pt s3/student.pt
CROP="--random-resized-crop --crop-scale 0.25,1 --flip --image-memory 0"
ok "RandomResizedCrop, 1 decode thread" $A amalgamate $RUN $CROP --workers 1 --out c1
ok "RandomResizedCrop, 3 decode threads" $A amalgamate $RUN $CROP --workers 3 --out c3
same "RandomResizedCrop: 3 decode threads = 1, bitwise" c1/student.pt c3/student.pt
if "$PY" "$HERE/fixtures/weight_difference.py" s1/student.pt c1/student.pt 0 >/dev/null 2>&1; then
  fail "RandomResizedCrop changes what the student sees"
else
  pass "RandomResizedCrop changes what the student sees"
fi
bad "RandomResizedCrop with teachers on clean images" "--random-resized-crop: the teachers see" \
  $A amalgamate $RUN $CROP --teachers-see-clean-images --out refused
bad "a crop scale outside (0, 1]" "--crop-scale: expected MIN,MAX" \
  $A amalgamate $RUN $CROP --crop-scale 0.5,2 --out refused

# SIGKILL after the first checkpoint (step 4 of 15 an epoch: mid-epoch), then --resume.
$A amalgamate $RUN $CROP --workers 2 --out killed >/dev/null 2>&1 &
pid=$!
for _ in $(seq 600); do [ -s killed/checkpoint.pt ] && break; sleep 0.05; done
kill -KILL $pid 2>/dev/null
wait $pid 2>/dev/null
if [ -e killed/student.pt ]; then
  fail "the run was killed before it finished (it finished first)"
else
  ok "SIGKILL mid-epoch, then --resume" $AMALGAM amalgamate --resume killed
  grep -q "killed/transfer_index.txt lists" "$W/err" &&
    pass "the resumed run reads its file list from the run directory" ||
    fail "the resumed run reads its file list: $(grep 'transfer set' "$W/err")"
  same "killed and resumed = uninterrupted, bitwise" c1/student.pt killed/student.pt
fi

# A bad file mid-stream: an HTML page saved as .jpg among the images.
cp -r imgs badimgs
printf '<!DOCTYPE html><html><body>Not found</body></html>\n' >badimgs/part1/00100b.jpg
bad "a bad file mid-stream stops the run, naming it" "badimgs/part1/00100b.jpg" \
  $A amalgamate $RUN --data badimgs --image-memory 0 --out badfail
absent "no student is written after a bad file" badfail/student.pt
ok "--on-bad-image skip streams past it" $AMALGAM amalgamate $RUN --data badimgs --image-memory 0 \
  --on-bad-image skip --out badskip
grep -q "skipping badimgs/part1/00100b.jpg" "$W/err" && pass "the skipped file is named in the log" ||
  fail "the skipped file is named in the log: $(grep -i skip "$W/err" | head -2)"
exists "a student despite the bad file" badskip/student.pt

summary streaming
