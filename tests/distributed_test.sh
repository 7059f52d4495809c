#!/usr/bin/env bash
# Data-parallel amalgamation on loopback (c10d TCPStore + ProcessGroupGloo), as a user runs it:
# 2 ranks x B/2 reach the weights of 1 rank x B; only rank 0 writes; resume needs the same world
# size and is bitwise; a rank that dies or hangs stops the others in bounded time; a port in use,
# an unreachable rank 0 or ranks given different options are one-line errors with nothing written.
set -u
AMALGAM=$(realpath "${1:?usage: distributed_test.sh path/to/amalgam}")
source "$(dirname "$0")/lib.sh"
make_fixtures make_dist_models.py
cd "$W" || exit 1
A="$AMALGAM --quiet"
RUN="amalgamate --teacher t1.pt:features --teacher t2.pt:features --student student.pt:features
     --data images --batch-size 16 --log-every 0 --method routed-cfl"
free_port() { "$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }

# close NAME A.pt B.pt BOUND [W0.pt]: BOUND 0, bitwise equal; else ||A - B|| / ||A - W0|| <= BOUND
# (tests/fixtures/weight_difference.py).
close() {
  local line
  line=$("$PY" "$HERE/fixtures/weight_difference.py" "$2" "$3" "$4" ${5:+"$5"} 2>&1)
  [ $? -eq 0 ] && pass "$1 ($line)" || fail "$1 ($line)"
}
# start NAME CMD...: the run's weights before training (one step at lr 1e-30, so a post-training
# calibration of the head is in them too), the W0 that the relative bound measures from.
start() {
  local name=$1; shift
  ok "$name: weights before training" "$@" --steps 1 --lr 1e-30 --threads 1 --out w0_$name \
    --export w0_$name.pt
}

# What 2 ranks x B/2 may legitimately differ from 1 rank x B by: the order of float32 sums. A
# reduction of n terms in another order rounds differently by up to n*u of its terms (u = 2^-24);
# the longest here is a first-layer gradient over B*H*W = 16*16*16 terms. Adam passes a relative
# change d of the gradient to its step as at most 2d, and over T = 12 steps the changes add:
# ||w1 - w2|| <= 2*T*n*u * ||w1 - w0||, the whole bound (no other term: each rank draws its own
# images' augmentation, and the MMD and routing see the gathered batch).
REORDER=$("$PY" -c "print(2 * 12 * 16 * 16 * 16 * 2**-24)")

# Equivalence: 96 images, 2 epochs of 6 steps. --batch-size is the whole step's batch, so the same
# options give 1 rank x 16 and 2 ranks x 8. The MMD is taken over the gathered batch.
ok "1 rank x 16 (cfl)" $A $RUN --epochs 2 --lr 1e-4 --threads 1 --out one --export one.pt
ok "2 ranks x 8 (cfl, --nproc 2)" $A $RUN --epochs 2 --lr 1e-4 --nproc 2 --out two --export two.pt
start cfl $A $RUN
close "cfl: 2 ranks x B/2 = 1 rank x B after 12 steps" one.pt two.pt $REORDER w0_cfl.pt
# The bound under a deliberate reordering of the same sums: one rank on 2 threads splits every
# reduction differently from one rank on 1 thread (a legitimate difference, so within the bound).
ok "1 rank x 16 on 2 threads (cfl)" $A $RUN --epochs 2 --lr 1e-4 --threads 2 --out one2 \
  --export one2.pt
close "reordered sums (2 threads vs 1) stay within the bound" one.pt one2.pt $REORDER w0_cfl.pt
ok "1 rank x 16 (kd)" $A ${RUN/routed-cfl/kd} --epochs 2 --threads 1 --out kd1 --export kd1.pt
ok "2 ranks x 8 (kd)" $A ${RUN/routed-cfl/kd} --epochs 2 --nproc 2 --out kd2 --export kd2.pt
start kd $A ${RUN/routed-cfl/kd}
close "kd: 2 ranks x B/2 = 1 rank x B after 12 steps" kd1.pt kd2.pt $REORDER w0_kd.pt
# Exact by construction: every teacher call, cached or per batch, runs at the step's shard shape.
ok "2 ranks, no teacher cache" $A $RUN --epochs 2 --lr 1e-4 --nproc 2 --no-teacher-cache \
  --out nocache --export nocache.pt
close "teacher cache sharded = teachers run per batch (bitwise)" two.pt nocache.pt 0
ok "1 rank x 16, augmented" $A $RUN --epochs 2 --lr 1e-4 --threads 1 --flip --crop-padding 2 \
  --out aug1 --export aug1.pt
ok "2 ranks x 8, augmented" $A $RUN --epochs 2 --lr 1e-4 --nproc 2 --flip --crop-padding 2 \
  --out aug2 --export aug2.pt
close "augmentation: each rank draws its images' crops and flips" aug1.pt aug2.pt $REORDER \
  w0_cfl.pt
exists "rank 0 wrote the run directory" two/config.json two/checkpoint.pt two/metrics.jsonl \
  two/report.html two/student.pt
grep -q '"world_size": 2' two/config.json && pass "config.json records the world size" ||
  fail "config.json records the world size"
# A zoo student with BatchNorm: per-rank statistics by default (as DDP), the whole batch's with
# --sync-batchnorm, which makes 2 ranks x 8 equal 1 rank x 16 again, within the same bound (the
# statistics are sums over the same B*H*W terms). Per-rank statistics are a real difference: they
# must lie above the bound, or the bound would not tell a wrong reduction from rounding.
BN="amalgamate --teacher t1.pt:features --teacher t2.pt:features --data images --batch-size 16
    --log-every 0 --epochs 2 --lr 1e-4 --student resnet --student-width 8 --method cfl"
ok "BatchNorm student, 1 rank x 16" $A $BN --threads 1 --out bn1 --export bn1.pt
ok "BatchNorm student, 2 ranks x 8" $A $BN --nproc 2 --out bn2 --export bn2.pt
ok "BatchNorm student, 2 ranks x 8, --sync-batchnorm" $A $BN --nproc 2 --sync-batchnorm \
  --out bns --export bns.pt
start bn $A ${BN/--epochs 2 --lr 1e-4/}
close "--sync-batchnorm: 2 ranks x B/2 = 1 rank x B" bn1.pt bns.pt $REORDER w0_bn.pt
ok "BatchNorm student, 1 rank x 16 on 2 threads" $A $BN --threads 2 --out bnt --export bnt.pt
close "BatchNorm, reordered sums (2 threads vs 1) stay within the bound" bn1.pt bnt.pt $REORDER \
  w0_bn.pt
"$PY" "$HERE/fixtures/weight_difference.py" bn1.pt bn2.pt "$REORDER" w0_bn.pt >bn2.diff
[ $? -ne 0 ] && pass "per-rank BatchNorm lies above the bound ($(cat bn2.diff))" ||
  fail "per-rank BatchNorm should differ beyond the bound ($(cat bn2.diff))"
bad "--sync-batchnorm needs a zoo student" "is a TorchScript student, whose BatchNorm layers" \
  $AMALGAM $RUN --epochs 1 --sync-batchnorm --out nobn
absent "nothing written (--sync-batchnorm)" nobn

# Ranks started one by one (as on several hosts): only rank 0 writes.
PORT=$(free_port)
$A $RUN --epochs 1 --threads 1 --world-size 2 --rank 1 --dist-url tcp://127.0.0.1:$PORT \
  --out r1 --export r1.pt >/dev/null 2>r1.err &
ok "explicit rank 0" $A $RUN --epochs 1 --threads 1 --world-size 2 --rank 0 \
  --dist-url tcp://127.0.0.1:$PORT --out r0
wait $! && pass "explicit rank 1" || fail "explicit rank 1"
exists "rank 0's outputs" r0/student.pt r0/checkpoint.pt
absent "rank 1 writes nothing" r1 r1.pt

# Ranks as torchrun (or a SLURM script) starts them: no rank flags, only the launcher's variables.
PORT=$(free_port)
ENV_RANK="env MASTER_ADDR=127.0.0.1 MASTER_PORT=$PORT WORLD_SIZE=2"
$ENV_RANK RANK=1 LOCAL_RANK=1 $A $RUN --epochs 2 --lr 1e-4 --threads 1 --out e1 >/dev/null 2>e1.err &
ok "rank 0 from MASTER_ADDR/MASTER_PORT/WORLD_SIZE/RANK" $ENV_RANK RANK=0 LOCAL_RANK=0 $A $RUN \
  --epochs 2 --lr 1e-4 --threads 1 --out e0 --export e0.pt
wait $! && pass "rank 1 from the environment" || fail "rank 1 from the environment: $(tail -1 e1.err)"
close "ranks from the environment = --nproc 2 (bitwise)" two.pt e0.pt 0
grep -q '"world_size": 2' e0/config.json && pass "the environment's world size is recorded" ||
  fail "the environment's world size is recorded"
bad "WORLD_SIZE without RANK" "RANK (environment): unset while WORLD_SIZE is 2" \
  env MASTER_ADDR=127.0.0.1 MASTER_PORT=$PORT WORLD_SIZE=2 $AMALGAM $RUN --epochs 1 --out e2
bad "a RANK that is not a number" "RANK (environment): expected a non-negative integer, got 'one'" \
  env MASTER_ADDR=127.0.0.1 MASTER_PORT=$PORT WORLD_SIZE=2 RANK=one $AMALGAM $RUN --epochs 1 --out e3
absent "nothing written (environment errors)" e2 e3
# torchrun itself (the wheel's): its agent holds the store at MASTER_PORT, each rank a client.
TORCHRUN="$(dirname "$PY")/torchrun"
if [ -x "$TORCHRUN" ]; then
  ok "torchrun --nproc-per-node 2 --no-python amalgam" "$TORCHRUN" --nproc-per-node 2 \
    --master-port "$(free_port)" --no-python $A $RUN --epochs 2 --lr 1e-4 --threads 1 --out tr \
    --export tr.pt
  close "torchrun's 2 ranks = --nproc 2 (bitwise)" two.pt tr.pt 0
else
  fail "torchrun missing beside $PY"
fi

# Two hosts: network namespaces joined by a veth pair (needs root and iproute2's ip). Rank 1
# finds the interface that routes to rank 0 by itself; then once more with --dist-iface.
NS=am$$
NET=10.$((RANDOM % 200 + 20)).77
if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null && ip netns add ${NS}a 2>/dev/null; then
  trap 'ip netns del ${NS}a 2>/dev/null; ip netns del ${NS}b 2>/dev/null; rm -rf "$W"' EXIT
  ip netns add ${NS}b && ip link add ${NS}x type veth peer name ${NS}y &&
    ip link set ${NS}x netns ${NS}a && ip link set ${NS}y netns ${NS}b &&
    ip -n ${NS}a addr add $NET.1/24 dev ${NS}x && ip -n ${NS}b addr add $NET.2/24 dev ${NS}y &&
    ip -n ${NS}a link set ${NS}x up && ip -n ${NS}b link set ${NS}y up &&
    ip -n ${NS}a link set lo up && ip -n ${NS}b link set lo up &&
    pass "two network namespaces ($NET.1, $NET.2)" || fail "two network namespaces"
  for iface in "" "--dist-iface ${NS}y"; do
    ip netns exec ${NS}b $A $RUN --epochs 2 --lr 1e-4 --threads 1 --world-size 2 --rank 1 \
      --dist-url tcp://$NET.1:29500 --dist-timeout 20 $iface >/dev/null 2>hostb.err &
    ok "host a: rank 0 ${iface:-(interface found by route)}" ip netns exec ${NS}a $A $RUN \
      --epochs 2 --lr 1e-4 --threads 1 --world-size 2 --rank 0 --dist-url tcp://$NET.1:29500 \
      --dist-timeout 20 --out hosts --export hosts.pt
    wait $! && pass "host b: rank 1" || fail "host b: rank 1: $(tail -n 1 hostb.err)"
    close "two hosts x 8 = --nproc 2 on one host (bitwise) ${iface}" two.pt hosts.pt 0
    rm -rf hosts hosts.pt
  done
else
  echo "skip two hosts: network namespaces need root and iproute2"
fi

# SIGINT to the launcher mid-run: every rank stops at the same step, rank 0 checkpoints; resume
# with the same world size ends bitwise where an uninterrupted run ends.
LONG="$RUN --epochs 20 --checkpoint-every 4"
ok "uninterrupted 2-rank run" $A $LONG --nproc 2 --out full --export full.pt
$A $LONG --nproc 2 --out cut --export cut.pt >/dev/null 2>cut.err &
pid=$!
for _ in $(seq 200); do [ -e cut/checkpoint.pt ] && break; sleep 0.05; done
sleep 0.3
kill -INT $pid
wait $pid
rc=$?
[ $rc -eq 130 ] && grep -q "rank 0: stopped by signal 2" cut.err && pass "SIGINT: exit 130, checkpoint" ||
  fail "SIGINT: exit $rc: $(tail -n 1 cut.err)"
bad "resume with another world size" "trained by 2 rank(s); resume it with as many (--nproc 2)" \
  $AMALGAM amalgamate --resume cut
ok "resume with --nproc 2" $A amalgamate --resume cut --nproc 2
close "interrupted + resumed = uninterrupted (bitwise)" full.pt cut.pt 0

# A rank killed mid-run: the launcher stops the others and names it, in bounded time.
$AMALGAM amalgamate --teacher t1.pt:features --teacher t2.pt:features --student student.pt:features \
  --data images --batch-size 16 --log-every 0 --epochs 100000 --nproc 2 --out dead >/dev/null 2>dead.err &
pid=$!
for _ in $(seq 200); do [ -e dead/checkpoint.pt ] && break; sleep 0.05; done
victim=$(ps -o pid=,args= --ppid $pid | grep -- "--rank 1 " | awk '{print $1}')
kill -KILL "$victim"
SECONDS=0
wait $pid
rc=$?
left=$(ps -o pid= --ppid $pid | wc -l)
last=$(tail -n 1 dead.err)
[ $rc -ne 0 ] && [ $SECONDS -le 30 ] && [ "$left" -eq 0 ] &&
  [[ "$last" == "amalgam: error: rank 1 (pid $victim) was killed by signal 9"* ]] &&
  grep -q "rank 0: distributed .* failed on rank 0" dead.err &&
  pass "killed rank: launcher exits $rc in ${SECONDS}s -> $last" ||
  fail "killed rank: exit $rc after ${SECONDS}s, $left left: $last"

# The launcher killed outright: its ranks get SIGTERM, checkpoint and stop.
$AMALGAM $RUN --epochs 100000 --nproc 2 --out orphan >/dev/null 2>&1 &
pid=$!
for _ in $(seq 200); do [ -e orphan/checkpoint.pt ] && break; sleep 0.05; done
ranks=$(ps -o pid= --ppid $pid | tr '\n' ' ')
kill -KILL $pid
wait $pid 2>/dev/null
for _ in $(seq 100); do
  alive=0
  for r in $ranks; do kill -0 "$r" 2>/dev/null && alive=1; done
  [ $alive -eq 0 ] && break
  sleep 0.1
done
[ -n "$ranks" ] && [ $alive -eq 0 ] && pass "launcher killed: its ranks ($ranks) stopped" ||
  fail "launcher killed: ranks ($ranks) still running"

# Ranks started by hand: rank 1 dies, rank 1 hangs (SIGSTOP), rank 0 dies; the survivor must
# not wait forever.
for fault in 1:KILL 1:STOP 0:KILL; do
  victim=${fault%%:*} signal=${fault##*:} survivor=$((1 - ${fault%%:*}))
  PORT=$(free_port)
  pids=()
  for rank in 0 1; do
    $AMALGAM $RUN --epochs 100000 --threads 1 --world-size 2 --rank $rank --dist-timeout 5 \
      --dist-url tcp://127.0.0.1:$PORT --out f_$fault >/dev/null 2>f$rank.err &
    pids+=($!)
  done
  for _ in $(seq 200); do [ -e f_$fault/checkpoint.pt ] && break; sleep 0.05; done
  kill -$signal ${pids[$victim]}
  SECONDS=0
  wait ${pids[$survivor]}
  rc=$?
  kill -KILL ${pids[$victim]} 2>/dev/null
  wait ${pids[$victim]} 2>/dev/null
  last=$(tail -n 1 f$survivor.err)
  [ $rc -eq 1 ] && [ $SECONDS -le 20 ] &&
    [[ "$last" == "amalgam: error: rank $survivor: distributed "*"another rank died"* ]] &&
    pass "rank $victim SIG$signal: rank $survivor exits in ${SECONDS}s -> $last" ||
    fail "rank $victim SIG$signal: rank $survivor exit $rc after ${SECONDS}s: $last"
done

# Rendezvous errors: one line, nothing written.
PORT=$(free_port)
"$PY" -c "
import socket, time
s = socket.socket(); s.bind(('0.0.0.0', $PORT)); s.listen(); time.sleep(20)" &
squatter=$!
sleep 0.5
bad "port in use" "port $PORT is already in use" \
  $AMALGAM $RUN --epochs 1 --world-size 2 --rank 0 --dist-url tcp://127.0.0.1:$PORT --out busy
kill $squatter 2>/dev/null
absent "nothing written (port in use)" busy
SECONDS=0
bad "unreachable rank 0" "cannot reach rank 0 within 3 s" \
  $AMALGAM $RUN --epochs 1 --world-size 2 --rank 1 --dist-url tcp://127.0.0.1:$(free_port) \
  --dist-timeout 3
[ $SECONDS -le 15 ] && pass "unreachable rank 0: gave up after ${SECONDS}s" ||
  fail "unreachable rank 0: took ${SECONDS}s"
PORT=$(free_port)
$AMALGAM $RUN --epochs 1 --threads 1 --lr 1e-4 --world-size 2 --rank 1 \
  --dist-url tcp://127.0.0.1:$PORT >/dev/null 2>&1 &
bad "ranks given different options" "rank 1's options, teachers or transfer images differ" \
  $AMALGAM $RUN --epochs 1 --threads 1 --world-size 2 --rank 0 --dist-url tcp://127.0.0.1:$PORT \
  --out differ
wait
absent "nothing written (different options)" differ
bad "batch not divisible by the ranks" "--batch-size: 15 must be a multiple of the number of ranks (2)" \
  $AMALGAM amalgamate --teacher t1.pt:features --teacher t2.pt:features \
  --student student.pt:features --data images --batch-size 15 --nproc 2 --out odd
absent "nothing written (batch size)" odd
bad "bad --dist-url" "--dist-url: expected tcp://HOST:PORT" \
  $AMALGAM $RUN --world-size 2 --rank 0 --dist-url 127.0.0.1:29500
bad "rank out of range" "--rank: must be in 0..1" \
  $AMALGAM $RUN --world-size 2 --rank 2 --dist-url tcp://127.0.0.1:29500

summary distributed
