# The two commands of the README: `make demo` and `make test`. Each does all set-up itself.
PY := .venv/bin/python

.PHONY: setup demo test test-slow clean

setup:
	bash scripts/bootstrap.sh

demo: setup
	$(PY) -m onebit.demo

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m "slow or not slow"

clean:
	rm -rf build .venv .pytest_cache .hypothesis
