#!/usr/bin/env bash
# Sets up and builds amalgam (scripts/setup.sh), installs what only the tests need (Debian's
# chromium, for the report's browser test), then runs the whole test suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v chromium >/dev/null 2>&1; then
  echo "test.sh: installing chromium (headless browser test of the HTML report)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
fi
ctest --test-dir build --output-on-failure "$@"
