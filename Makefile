# The two commands of the README: `make demo` and `make test`. Each does all set-up itself.
PY := .venv/bin/python

.PHONY: setup demo test test-slow fuzz test-asan clean

setup:
	bash scripts/bootstrap.sh

demo: setup
	$(PY) -m onebit.demo

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m "slow or not slow"

# Reliability (docs/reliability.md): the long model-file fuzz run, and the kernels under ASan+UBSan.
FUZZ_CASES ?= 100000
fuzz: setup
	$(PY) scripts/fuzz_model_files.py --cases $(FUZZ_CASES) --seed 0

test-asan:
	bash scripts/test_asan.sh

clean:
	rm -rf build .venv .venv-asan .pytest_cache .hypothesis
