#!/usr/bin/env bash
# Installs amalgam's dependencies on Debian 12 (needs root, or sudo) and builds it into build/.
#   - Debian packages: the compiler, CMake, header libraries, GoogleTest, Gloo's headers,
#     Fashion-MNIST and scikit-learn's digits table;
#   - LibTorch from the PyTorch wheel (pinned below), with torchvision for the test fixtures and
#     the matching CUDA toolkit's nvcc, in the project's virtual environment .venv/ (CMake finds
#     LibTorch through the wheel's cmake_prefix_path). The wheel's LibTorch is CUDA-enabled:
#     amalgam links libtorch_cuda, so the CUDA paths compile on every build, and the same binary
#     runs on a machine without a GPU.
# Nothing is downloaded at build or run time. Each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.15.0        # LibTorch 2.15 (CUDA 13.2 build): C++20, C++11 ABI
TORCHVISION_VERSION=0.29.2  # the matching torchvision (fixtures: ViT, Swin, ConvNeXt, ...)
NUMPY_VERSION=2.4.6         # tensors to and from NumPy in the fixtures
CUDA_TOOLKIT_VERSION=13.2.2 # the CUDA torch 2.15.0 requires; its nvcc for CMake's CUDA probe
VENV=.venv

PACKAGES=(
  cmake g++ make
  python3 python3-venv      # the virtual environment holding the PyTorch wheel
  libcli11-dev nlohmann-json3-dev libstb-dev zlib1g-dev libgtest-dev
  libturbojpeg0-dev         # libjpeg-turbo's TurboJPEG: JPEG decoding, scaled in the DCT domain
  libarchive-dev            # tar shards of a streamed transfer set
  libtcmalloc-minimal4      # TCMalloc: a step's large tensors reused, not mapped afresh
  libgloo-dev               # Gloo's headers: c10d's CPU collectives (the wheel ships the library)
  dataset-fashion-mnist     # /usr/share/datasets/fashion-mnist
  python3-sklearn           # its digits table: the cross-domain set-up of reproduce
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

# The wheel's CMake files need a CUDA toolkit (nvcc, headers) to compile against libtorch_cuda:
# the one of the CUDA version the wheel was built with comes from PyPI too (its nvcc extra), so no
# system toolkit is needed and none of another version is mixed in.
wanted="torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION numpy==$NUMPY_VERSION"
wanted+=" cuda-toolkit[nvcc]==$CUDA_TOOLKIT_VERSION"
stamp="$VENV/.amalgam-pins"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "setup: installing $wanted into $VENV (about 5 GB with the CUDA libraries)"
  [ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv "$VENV"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q --disable-pip-version-check $wanted
  echo "$wanted" >"$stamp"
fi
TORCH_PREFIX=$("$VENV/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
CUDA_ROOT=$(echo "$PWD/$VENV"/lib/python3*/site-packages/nvidia/cu[0-9]*)
[ -x "$CUDA_ROOT/bin/nvcc" ] || { echo "setup: error: no nvcc in $CUDA_ROOT" >&2; exit 1; }

PATH="$CUDA_ROOT/bin:$PATH" cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" -DCUDAToolkit_ROOT="$CUDA_ROOT" \
  -DCMAKE_CUDA_COMPILER="$CUDA_ROOT/bin/nvcc" -DAMALGAM_PYTHON="$PWD/$VENV/bin/python"
cmake --build build -j"$(nproc)"
