#!/usr/bin/env bash
# Builds the libFuzzer targets with Debian's clang (ASan + UBSan) and runs each for a bounded time
# from its seeds in fuzz/seeds/TARGET, then prints per target: executions, executions per second,
# edges covered, corpus size and whether it failed (also in build-fuzz/summary.md). Crashes land in
# build-fuzz/crashes/TARGET/; every one found becomes a regression test.
#
# usage: fuzz/run.sh [SECONDS_PER_TARGET [PARALLEL [TARGET...]]]   (default 60, 1, every target)
# targets: idx image sidecar cli_config run_config report checkpoint
#
# Each target's readers are compiled instrumented; the rest of the library is linked, without
# coverage, from build/libamalgam.a (cmake --build build --target amalgam_lib makes it).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_EACH=${1:-60}
PARALLEL=${2:-1}
shift $(($# < 2 ? $# : 2))
TARGETS=(idx image sidecar cli_config run_config report checkpoint)
[ $# -gt 0 ] && TARGETS=("$@")
OUT="$ROOT/build-fuzz"
OBJ="$OUT/obj"
LIB="$ROOT/build/libamalgam.a"
mkdir -p "$OBJ"
[ -f "$LIB" ] || { echo "fuzz/run.sh: $LIB is missing: cmake --build build --target amalgam_lib" >&2; exit 1; }
# LibTorch from the project's PyTorch wheel (scripts/setup.sh), C++20 as its headers require.
TORCH=$("$ROOT/.venv/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))') || {
  echo "fuzz/run.sh: no PyTorch wheel in $ROOT/.venv: run scripts/setup.sh" >&2; exit 1; }
FLAGS=(-std=c++20 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined
       -I"$ROOT/src" -I"$ROOT/tools" -I"$ROOT/fuzz" -isystem "$TORCH/include"
       -isystem "$TORCH/include/torch/csrc/api/include" -I/usr/include/stb)
# libamalgam.a holds the NCCL backend too: libtorch_cuda, found with the wheel's CUDA libraries.
NVIDIA=$(dirname "$TORCH")/nvidia
LIBS=(-L"$TORCH/lib" -Wl,-rpath,"$TORCH/lib" -ltorch -ltorch_cpu -ltorch_cuda -lc10_cuda -lc10
      -Wl,-rpath-link,"$(echo "$NVIDIA"/cu[0-9]*/lib)" -Wl,-rpath-link,"$NVIDIA/nccl/lib" -lz -lstb -lturbojpeg
      -lpthread)

# The sources compiled with coverage for each target: the harness and the readers it drives.
sources() {
  case $1 in
    idx) echo src/data/idx.cpp ;;
    image) echo src/data/image_decode.cpp src/data/image_folder.cpp ;;
    sidecar) echo src/teachers/conventions.cpp src/core/json_file.cpp src/models/zoo.cpp \
                  src/data/head_layout.cpp src/data/task.cpp ;;
    cli_config) echo tools/command_line.cpp src/core/json_file.cpp src/core/names.cpp ;;
    run_config) echo src/app/run_config.cpp src/core/json_file.cpp src/training/options_json.cpp \
                     src/routing/routing.cpp src/method/objective_config.cpp ;;
    report) echo src/reporting/run_files.cpp src/reporting/report.cpp src/core/json_file.cpp ;;
    checkpoint) echo src/training/run_checkpoint.cpp src/core/json_file.cpp \
                     src/method/loss_values.cpp ;;
    *) echo "fuzz/run.sh: unknown target '$1'" >&2; exit 1 ;;
  esac
}

# object FILE: FILE compiled with coverage into build-fuzz/obj (again when it or a header changed).
object() {
  local src="$ROOT/$1" obj="$OBJ/$(echo "$1" | tr / _).o" extra=()
  [[ "$1" == fuzz/* ]] && extra=(-fsanitize=fuzzer) || extra=(-fsanitize=fuzzer-no-link)
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] ||
     [ -n "$(find "$ROOT/src" "$ROOT/tools" "$ROOT/fuzz" -name '*.h' -newer "$obj" | head -1)" ]; then
    clang++ "${FLAGS[@]}" "${extra[@]}" -c "$src" -o "$obj"
  fi
  echo "$obj"
}

for t in "${TARGETS[@]}"; do
  objects=()
  for s in "fuzz/fuzz_$t.cpp" $(sources "$t"); do
    obj=$(object "$s") || exit 1
    objects+=("$obj")
  done
  echo "linking fuzz_$t"
  clang++ "${FLAGS[@]}" -fsanitize=fuzzer "${objects[@]}" "$LIB" "${LIBS[@]}" -o "$OUT/fuzz_$t"
done

# A checkpoint seed needs the harness's own modules: it writes one.
if printf '%s\n' "${TARGETS[@]}" | grep -qx checkpoint && [ ! -f "$ROOT/fuzz/seeds/checkpoint/file" ]; then
  AMALGAM_FUZZ_WRITE_SEED="$ROOT/fuzz/seeds/checkpoint" "$OUT/fuzz_checkpoint"
fi

run() {  # run TARGET: one libFuzzer run, its log in build-fuzz/TARGET.log
  local t=$1 corpus="$OUT/corpus/$1" crashes="$OUT/crashes/$1" dict=()
  mkdir -p "$corpus" "$crashes"
  case $t in sidecar|cli_config|run_config|report|checkpoint) dict=(-dict="$ROOT/fuzz/json.dict") ;; esac
  "$OUT/fuzz_$t" "$corpus" "$ROOT/fuzz/seeds/$t" "${dict[@]}" -max_total_time="$SECONDS_EACH" \
    -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$crashes/" >"$OUT/$t.log" 2>&1
}

echo "running ${TARGETS[*]} for ${SECONDS_EACH}s each, $PARALLEL at a time"
declare -A rc
pids=()
for t in "${TARGETS[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do wait -n || true; done
  run "$t" &
  pids+=("$!:$t")
done
status=0
for p in "${pids[@]}"; do
  if wait "${p%%:*}"; then rc[${p#*:}]=0; else rc[${p#*:}]=1; status=1; fi
done

summary="$OUT/summary.md"
{
  echo "| target | seconds | executions | exec/s | edges | corpus | result |"
  echo "|---|---:|---:|---:|---:|---:|---|"
  for t in "${TARGETS[@]}"; do
    log="$OUT/$t.log"
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    edges=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    corpus=$(echo "$last" | sed -n 's/.*corp: \([0-9]*\).*/\1/p')
    rate=$([ -n "$runs" ] && [ -n "$secs" ] && [ "$secs" -gt 0 ] && echo $((runs / secs)) || echo "-")
    result=$([ "${rc[$t]}" = 0 ] && echo "no failure" || echo "FAILED: $(grep -m1 -E 'ERROR|SUMMARY|deadly' "$log" || echo see log)")
    echo "| $t | ${secs:--} | ${runs:--} | $rate | ${edges:--} | ${corpus:--} | $result |"
  done
} >"$summary"
cat "$summary"
exit $status
