#!/usr/bin/env bash
# Every C++ file of the project is laid out as .clang-format says: clang-format --dry-run
# --Werror names each file and line that differs (fix with clang-format -i FILE).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v clang-format >/dev/null || { echo "FAIL clang-format is not installed (scripts/test.sh installs it)"; exit 1; }
cd "$ROOT" || exit 1
mapfile -t files < <(find src tools experiments tests fuzz bench -name '*.cpp' -o -name '*.h' | sort)
if clang-format --dry-run --Werror "${files[@]}"; then
  echo "format: ${#files[@]} files as .clang-format lays them out"
else
  echo "FAIL format: the files above differ from .clang-format's layout"
  exit 1
fi
