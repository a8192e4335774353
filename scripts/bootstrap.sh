#!/usr/bin/env bash
# Set up everything onebit needs on a fresh machine; quick and idempotent when already done.
#   - Fashion-MNIST from Debian (dataset-fashion-mnist) when missing
#   - a virtualenv (.venv, or $ONEBIT_VENV) with torch==2.13.0 (CPU wheel) and the dev tools
#   - onebit itself, editable, with its C++ extension (rebuilt when csrc/ or the build files change)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${ONEBIT_VENV:-.venv}
FMNIST=/usr/share/datasets/fashion-mnist
PIP_ARGS=(-q -c scripts/constraints.txt)
[ -d /opt/wheels ] && PIP_ARGS+=(--find-links /opt/wheels)

log() { echo "[bootstrap] $*"; }

if [ -z "${ONEBIT_FASHION_MNIST:-}" ] && [ ! -f "$FMNIST/t10k-labels-idx1-ubyte.gz" ]; then
  log "installing Fashion-MNIST (apt-get install dataset-fashion-mnist)"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtualenv $VENV"
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"

if ! "$PY" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  log "installing torch==2.13.0 (CPU)"
  "$PY" -m pip install "${PIP_ARGS[@]}" torch==2.13.0
fi
if ! "$PY" -c "import nanobind, scikit_build_core, pytest, hypothesis, PIL, sklearn, yaml, matplotlib" 2>/dev/null; then
  log "installing build and test dependencies"
  "$PY" -m pip install "${PIP_ARGS[@]}" -r scripts/requirements-dev.txt
fi

# Rebuild the extension when anything that goes into it changed.
hash=$(cat pyproject.toml CMakeLists.txt $(find csrc -type f | sort) | sha256sum | cut -c1-16)
stamp="build/.onebit-installed-$hash"
if [ ! -f "$stamp" ] || ! "$PY" -c "import onebit._C" 2>/dev/null; then
  log "building onebit and its C++ extension"
  "$PY" -m pip install "${PIP_ARGS[@]}" --no-build-isolation --no-deps -e .
  mkdir -p build && rm -f build/.onebit-installed-* && touch "$stamp"
fi

"$PY" -c "import torch, onebit; assert torch.__version__.startswith('2.13.0'), torch.__version__" \
  || { echo "[bootstrap] torch is not 2.13.0 in $VENV" >&2; exit 1; }
