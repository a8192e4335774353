"""onebit.timing: the figures' definitions, and the warning on the test-only emulated build."""

import sys
import types
import warnings

import pytest

from onebit import timing


def test_best_and_median_count_calls():
    calls = []
    assert timing.best_seconds(lambda: calls.append(1), repeats=3, rounds=2) >= 0
    assert len(calls) == 1 + 3 * 2  # one untimed call, then rounds x repeats
    calls.clear()
    assert timing.median_seconds(lambda: calls.append(1), repeats=4, warmup=2) >= 0
    assert len(calls) == 6
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        timing.median_seconds(lambda: None, repeats=0)


def test_emulated_build_warns(monkeypatch):
    monkeypatch.setitem(sys.modules, "onebit._C", types.SimpleNamespace(avx512_emulated=True))
    with pytest.warns(RuntimeWarning, match="emulates AVX-512"):
        timing.best_seconds(lambda: None, repeats=1, rounds=1)
    with pytest.warns(RuntimeWarning, match="emulates AVX-512"):
        timing.median_seconds(lambda: None, repeats=1, warmup=0)
    monkeypatch.setitem(sys.modules, "onebit._C", types.SimpleNamespace(avx512_emulated=False))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        timing.best_seconds(lambda: None, repeats=1, rounds=1)
