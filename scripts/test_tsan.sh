#!/usr/bin/env bash
# Build onebit._C with ThreadSanitizer in its own virtualenv and run the engine concurrency tests under
# it. The counterpart of scripts/test_asan.sh (same layout, its own venv and build dir):
#   - virtualenv  .venv-tsan (or $ONEBIT_TSAN_VENV; $ONEBIT_ASAN_VENV is honoured too), torch==2.13.0 CPU
#   - build dir   build/tsan (CMake option ONEBIT_SANITIZE=thread, -O1 -g)
#   - tests       $ONEBIT_TSAN_TESTS (default tests/test_engine_concurrency.py; several paths separated by
#                 spaces), with libtsan preloaded because the python executable is not instrumented
# Only onebit's C++ code is instrumented: CPython, torch, numpy and OpenBLAS are not, so a race inside
# them goes unseen, and synchronization they do with their own atomics (rather than pthread calls, which
# TSan intercepts) is invisible to TSan. A report whose stacks are all in onebit code is meaningful; one
# that involves those libraries needs a closer look before it is called a bug. halt_on_error=1: the first
# report ends the run (exit status 66), so a clean exit = no report.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${ONEBIT_TSAN_VENV:-${ONEBIT_ASAN_VENV:-.venv-tsan}}
read -r -a TESTS <<< "${ONEBIT_TSAN_TESTS:-tests/test_engine_concurrency.py}"  # one or more paths
log() { echo "[tsan] $*"; }

# shellcheck source=scripts/sanitizer_venv.sh
source scripts/sanitizer_venv.sh

# TSan's instrumentation gives every unit a weak DW.ref.__gxx_personality_v0 (a pointer to the C++
# personality routine, no ISA code); cmake/check_isa_symbols.cmake lets exactly that weak symbol through.
mkdir -p build/tsan

log "building onebit._C with -fsanitize=thread (build/tsan)"
"$PY" -m pip install "${PIP_ARGS[@]}" --no-build-isolation --no-deps -e . \
  -Cbuild-dir=build/tsan -Ccmake.build-type=RelWithDebInfo -Ccmake.define.ONEBIT_SANITIZE=thread

LIBTSAN=$(gcc -print-file-name=libtsan.so)
[ -f "$LIBTSAN" ] || { echo "[tsan] libtsan.so not found (gcc -print-file-name=libtsan.so)" >&2; exit 1; }
LIBSTDCXX=$(gcc -print-file-name=libstdc++.so)
export LD_PRELOAD="$LIBTSAN:$LIBSTDCXX"
REPORTS="$PWD/build/tsan/reports"
rm -rf "$REPORTS" && mkdir -p "$REPORTS"
# Suppressed, each a report seen here that is not about onebit's code:
#  - _dl_deallocate_tls: glibc frees a finished thread's dynamic TLS block (where _C's thread_local scratch
#    lives) when a new thread reuses its cached stack; the exiting thread's thread_local destructor
#    (scratch.cpp) read it before, and the ordering goes through glibc's stack-cache lock, which TSan does
#    not see (ld.so and libc are not instrumented).
SUPP="$PWD/build/tsan/suppressions.txt"
printf '%s\n' "race:_dl_deallocate_tls" > "$SUPP"
# report_signal_unsafe=0: CPython's and faulthandler's signal handlers are not ours.
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:report_signal_unsafe=0:suppressions=$SUPP:log_path=$REPORTS/tsan${ONEBIT_TSAN_OPTIONS:+:$ONEBIT_TSAN_OPTIONS}"
# torch's own intra-op threads (OpenMP, uninstrumented libgomp) synchronize in ways TSan cannot see: one
# thread keeps torch's work on the calling thread, so the threads TSan watches are python's and the engine's.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
report() { if compgen -G "$REPORTS/*" >/dev/null; then echo "[tsan] sanitizer reports:" >&2; cat "$REPORTS"/* >&2; fi; }
trap report EXIT
# TSan needs its fixed memory layout: on kernels with high ASLR entropy it aborts at start-up
# ("unexpected memory mapping"); running without ASLR (setarch -R) avoids that.
RUN=()
if command -v setarch >/dev/null && setarch "$(uname -m)" -R true 2>/dev/null; then RUN=(setarch "$(uname -m)" -R); fi
"${RUN[@]}" "$PY" -c "import onebit._C as C, sys; print('[tsan] extension:', C.__file__, file=sys.stderr)"
log "running: pytest ${TESTS[*]} $* (LD_PRELOAD=$LD_PRELOAD)"
"${RUN[@]}" "$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}" "$@"
log "clean: no ThreadSanitizer report"
