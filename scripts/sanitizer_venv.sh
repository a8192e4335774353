# Sourced by scripts/test_asan.sh, scripts/test_tsan.sh and scripts/test_avx512_emulated.sh: the virtualenv $VENV with torch==2.13.0 (CPU)
# and the build/test tools, created or completed as needed. Needs VENV and log(); sets PY and PIP_ARGS.
PIP_ARGS=(-q -c scripts/constraints.txt)
[ -d /opt/wheels ] && PIP_ARGS+=(--find-links /opt/wheels)

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtualenv $VENV"
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
if ! "$PY" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  log "installing torch==2.13.0 (CPU) into $VENV"
  "$PY" -m pip install "${PIP_ARGS[@]}" torch==2.13.0
fi
if ! "$PY" -c "import nanobind, scikit_build_core, pytest, hypothesis, yaml" 2>/dev/null; then
  log "installing build and test dependencies into $VENV"
  "$PY" -m pip install "${PIP_ARGS[@]}" -r scripts/requirements-dev.txt
fi
