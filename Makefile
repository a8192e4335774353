# The two commands of the README: `make demo` and `make test`. Each does all set-up itself.
PY := .venv/bin/python

.PHONY: setup demo test test-slow fuzz test-asan test-tsan test-avx512-emulated clean

setup:
	bash scripts/bootstrap.sh

demo: setup
	$(PY) -m onebit.demo

# The fast tier, then a short sanitizer run (ASan + UBSan build of the extension in .venv-asan /
# build/asan; the binary conv kernels and the engine tests; ~3 min from scratch), and the AVX-512 kernels'
# tests on SIMDe's emulation of AVX-512 (.venv-emu512 / build/emu512, ~2 min), so that they run on CPUs
# without AVX-512 too. make test-asan: all kernels.
test: setup
	$(PY) -m pytest -q
	ONEBIT_ASAN_TESTS="tests/kernels/test_bconv2d.py tests/kernels/test_igemm.py tests/test_engine.py tests/export/test_quantize.py" bash scripts/test_asan.sh
	bash scripts/test_avx512_emulated.sh

test-slow: setup
	$(PY) -m pytest -q -m "slow or not slow"

# Reliability (docs/reliability.md): the long model-file fuzz run, and the kernels under ASan+UBSan.
FUZZ_CASES ?= 100000
fuzz: setup
	$(PY) scripts/fuzz_model_files.py --cases $(FUZZ_CASES) --seed 0

test-asan:
	bash scripts/test_asan.sh

# The kernel, engine and int8 tests with the AVX-512 units built on SIMDe (correctness only, not speed).
test-avx512-emulated:
	bash scripts/test_avx512_emulated.sh

# ThreadSanitizer build (.venv-tsan, build/tsan) and the engine concurrency tests (docs/reliability.md §5).
test-tsan:
	bash scripts/test_tsan.sh

clean:
	rm -rf build .venv .venv-asan .venv-tsan .venv-emu512 .pytest_cache .hypothesis
