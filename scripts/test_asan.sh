#!/usr/bin/env bash
# Build onebit._C with AddressSanitizer + UndefinedBehaviorSanitizer in its own virtualenv and run
# the kernel tests under it (make test-asan). The normal .venv and its build dir are not touched:
#   - virtualenv  .venv-asan (or $ONEBIT_ASAN_VENV), torch==2.13.0 CPU wheel + the dev tools
#   - build dir   build/asan (CMake option ONEBIT_SANITIZE=address,undefined, -O1 -g)
#   - tests       $ONEBIT_ASAN_TESTS (default tests/kernels; several paths separated by spaces), with
#                 libasan preloaded because the python executable itself is not instrumented
# Any ASan report or UBSan diagnostic aborts the process (halt_on_error), so a clean exit = clean run.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${ONEBIT_ASAN_VENV:-.venv-asan}
SANITIZE=${ONEBIT_SANITIZE:-address,undefined}
read -r -a TESTS <<< "${ONEBIT_ASAN_TESTS:-tests/kernels}"  # one or more paths
log() { echo "[asan] $*"; }

# shellcheck source=scripts/sanitizer_venv.sh
source scripts/sanitizer_venv.sh

log "building onebit._C with -fsanitize=$SANITIZE (build/asan)"
"$PY" -m pip install "${PIP_ARGS[@]}" --no-build-isolation --no-deps -e . \
  -Cbuild-dir=build/asan -Ccmake.build-type=RelWithDebInfo -Ccmake.define.ONEBIT_SANITIZE="$SANITIZE"

LIBASAN=$(gcc -print-file-name=libasan.so)
[ -f "$LIBASAN" ] || { echo "[asan] libasan.so not found (gcc -print-file-name=libasan.so)" >&2; exit 1; }
# libstdc++ too: python does not link it, and ASan must find the real __cxa_throw at start-up or it
# aborts on the first C++ exception ("CHECK failed ... real___cxa_throw").
LIBSTDCXX=$(gcc -print-file-name=libstdc++.so)
export LD_PRELOAD="$LIBASAN:$LIBSTDCXX"
# detect_leaks=0: CPython and torch keep allocations alive until exit by design.
# Reports go to files as well as stderr: pytest's fd capture would swallow them when the process aborts.
REPORTS="$PWD/build/asan/reports"
rm -rf "$REPORTS" && mkdir -p "$REPORTS"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:log_path=$REPORTS/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$REPORTS/ubsan"
report() { if compgen -G "$REPORTS/*" >/dev/null; then echo "[asan] sanitizer reports:" >&2; cat "$REPORTS"/* >&2; fi; }
trap report EXIT
"$PY" -c "import onebit._C as C, sys; print('[asan] extension:', C.__file__, file=sys.stderr)"
log "running: pytest ${TESTS[*]} $* (LD_PRELOAD=$LD_PRELOAD)"
"$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}" "$@"
log "clean: no ASan or UBSan report"
