#!/usr/bin/env bash
# Run the AVX-512 kernels' tests on a CPU without AVX-512 (make test-avx512-emulated; part of make test
# when the CPU lacks AVX-512). The AVX-512 units are built on SIMDe's emulation of the intrinsics
# (CMake ONEBIT_EMULATE_AVX512=ON, csrc/emulate/avx512_emulated.h) in their own virtualenv and build
# dir, so the normal .venv and build/ are not touched:
#   - virtualenv  .venv-emu512 (or $ONEBIT_EMU_VENV), torch==2.13.0 CPU wheel + the dev tools
#   - build dir   build/emu512
#   - tests       $ONEBIT_EMU_TESTS (default: the kernel, engine, int8 and method-op tests), every ISA including
#                 the emulated avx512, against the reference and PyTorch as everywhere else
#   - ONEBIT_EMU_SANITIZE=address,undefined: the same under ASan + UBSan (build/emu512-asan, libasan
#     preloaded, options as in scripts/test_asan.sh)
# This checks what the AVX-512 code computes, not how fast: never benchmark this build.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${ONEBIT_EMU_VENV:-.venv-emu512}
read -r -a TESTS <<< "${ONEBIT_EMU_TESTS:-tests/kernels tests/test_engine.py tests/export/test_quantize.py tests/export/test_method_ops.py}"
log() { echo "[avx512-emulated] $*"; }

if [ ! -f /usr/include/simde/x86/avx512.h ]; then
  log "installing SIMDe (apt-get install libsimde-dev)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libsimde-dev >/dev/null
fi

# shellcheck source=scripts/sanitizer_venv.sh
source scripts/sanitizer_venv.sh

SANITIZE=${ONEBIT_EMU_SANITIZE:-}
BUILD=build/emu512
CMAKE_ARGS=(-Ccmake.define.ONEBIT_EMULATE_AVX512=ON)
if [ -n "$SANITIZE" ]; then
  BUILD=build/emu512-asan
  CMAKE_ARGS+=(-Ccmake.build-type=RelWithDebInfo -Ccmake.define.ONEBIT_SANITIZE="$SANITIZE")
fi
log "building onebit._C with the AVX-512 units on SIMDe ($BUILD${SANITIZE:+, -fsanitize=$SANITIZE})"
"$PY" -m pip install "${PIP_ARGS[@]}" --no-build-isolation --no-deps -e . -Cbuild-dir="$BUILD" "${CMAKE_ARGS[@]}"
if [ -n "$SANITIZE" ]; then
  LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libstdc++.so)"
  export LD_PRELOAD
  export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
fi
"$PY" - <<'PYEOF'
import onebit.kernels as k
assert k.AVX512_EMULATED, "the build in build/emu512 is not the emulated one"
assert "avx512" in k.available_isas(), k.available_isas()
print("[avx512-emulated] ISAs:", k.available_isas())
PYEOF
export ONEBIT_AVX512_EMULATED_RUN=1  # tests/kernels/test_bitpack_kernels.py checks the build against it
log "running: pytest ${TESTS[*]} $*"
"$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}" "$@"
log "the AVX-512 kernels agree with the reference (under emulation)"
