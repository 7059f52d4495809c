#!/usr/bin/env bash
# Sets up and builds amalgam (scripts/setup.sh), installs what only the tests need (Debian's
# chromium, for the report's browser test; iproute2, whose network namespaces play two hosts in
# the data-parallel test; clang-format, for the layout check), then runs the whole test suite
# with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v clang-format >/dev/null 2>&1 || missing+=(clang-format)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]} (browser test of the report; two-host test; layout check)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
ctest --test-dir build --output-on-failure "$@"
