#!/usr/bin/env bash
# A transfer folder streamed from disk (--image-memory 0: an index of files decoded per batch)
# trains the same student as the folder decoded into memory, bitwise, whatever the number of
# decode threads; with RandomResizedCrop (drawn per image, cropped from the file's full size) the
# same across decode threads and across SIGKILL + --resume mid-epoch; a bad file mid-stream stops
# the run with a one-line error naming it (nothing written), or is replaced and named under skip.
# Tar shards of the same images (amalgam shard's, and Python tarfile's PAX ones) train the same
# student as the folder; a compressed or truncated shard is refused, naming shard and member.
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
TRAIN="--teacher ta/teacher.pt --teacher tb/teacher.pt --student-width 8 --batch-size 32
       --epochs 2 --threads 1 --checkpoint-every 4"
RUN="$TRAIN --data imgs"

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
absent "nothing is written for a refused option" refused
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
  $A amalgamate $TRAIN --data badimgs --image-memory 0 --out badfail
absent "no student is written after a bad file" badfail/student.pt
ok "--on-bad-image skip streams past it" $AMALGAM amalgamate $TRAIN --data badimgs --image-memory 0 \
  --on-bad-image skip --out badskip
grep -q "skipping badimgs/part1/00100b.jpg" "$W/err" && pass "the skipped file is named in the log" ||
  fail "the skipped file is named in the log: $(grep -i skip "$W/err" | head -2)"
exists "a student despite the bad file" badskip/student.pt

# Tar shards (WebDataset's layout) hold the same images in the same order: the same student.
ok "amalgam shard writes shards" $AMALGAM shard --data imgs --out shards --images-per-shard 100
grep -q "shards/shard-{000000..000004}.tar" "$W/out" && pass "it prints the --data pattern" ||
  fail "it prints the --data pattern: $(cat "$W/out")"
SHARDS="shards/shard-{000000..000004}.tar"
ok "shards, streamed" $A amalgamate $TRAIN --data "$SHARDS" --image-memory 0 --workers 1 --out t1
same "shards streamed = folder streamed, bitwise" s1/student.pt t1/student.pt
ok "shards, in memory" $A amalgamate $TRAIN --data "$SHARDS" --out tmem
same "shards in memory = folder in memory, bitwise" mem/student.pt tmem/student.pt
"$PY" "$HERE/fixtures/write_pax_shards.py" imgs pax 160
ok "Python's PAX shards (long names, .cls members), streamed" $A amalgamate $TRAIN \
  --data 'pax/train-{0000..0002}.tar' --image-memory 0 --workers 2 --out tp
same "PAX shards = folder, bitwise" s1/student.pt tp/student.pt
bad "a shard written into a folder holding shards" "already holds shards" \
  $A shard --data imgs --out shards
bad "a backwards range" "--data: 'x-{9..1}.tar': the range runs backwards" \
  $A amalgamate $TRAIN --data 'x-{9..1}.tar' --out refused
gzip -c shards/shard-000001.tar >gz.tar
bad "a compressed shard" "gz.tar: a compressed (gzip) shard" $A amalgamate $TRAIN --data gz.tar --out refused
# A download cut short: the shard ends inside a member.
"$PY" -c "import tarfile; m = tarfile.open('shards/shard-000002.tar').getmembers()[10]
open('cut.tar', 'wb').write(open('shards/shard-000002.tar', 'rb').read()[:m.offset_data + m.size // 2])"
bad "a truncated shard stops the run, naming shard and member" \
  "cut.tar:00000210" $A amalgamate $TRAIN --data shards/shard-000000.tar --data cut.tar \
  --image-memory 0 --out cutfail
absent "no run is written after a truncated shard" cutfail/config.json
ok "--on-bad-image skip keeps the members before the damage" $AMALGAM amalgamate $TRAIN \
  --data shards/shard-000000.tar --data cut.tar --image-memory 0 --on-bad-image skip --out cutskip
grep -q "skipping the rest of cut.tar" "$W/err" && pass "the truncated shard is named in the log" ||
  fail "the truncated shard is named in the log: $(grep -i skip "$W/err" | head -2)"
exists "a student despite the truncated shard" cutskip/student.pt

summary streaming
