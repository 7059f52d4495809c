#!/usr/bin/env bash
# Installs amalgam's Debian 12 dependencies (needs root, or sudo) and builds it into build/.
# Every dependency is a Debian package; nothing is downloaded at build or run time.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  cmake g++ make
  libtorch-dev            # LibTorch 1.13 (C++ API, TorchScript, c10d)
  libopenblas0-pthread    # replaces the reference BLAS libtorch links: ~30x faster GEMM
  libcli11-dev nlohmann-json3-dev libstb-dev zlib1g-dev libgtest-dev libgloo-dev
  dataset-fashion-mnist   # /usr/share/datasets/fashion-mnist
  python3-torch python3-torchvision  # test fixtures and the reference benchmark
  python3-sklearn         # its digits table: the cross-domain set-up of reproduce
)

missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
