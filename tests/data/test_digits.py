"""scikit-learn's digits: shapes, split sizes, disjointness, determinism."""

from __future__ import annotations

import sys

import pytest
import torch

pytest.importorskip("sklearn")

import onebit.data  # noqa: E402,F401

dg = sys.modules["onebit.data.digits"]


def test_split_sizes_shapes_and_range():
    train, test = dg.digits("train"), dg.digits("test")
    assert len(train) + len(test) == 1797 and len(test) == 359
    x, y = train.tensors
    assert x.shape == (len(train), 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() == 0 and x.max() == 1
    assert set(y.tolist()) == set(range(10)) == set(test.tensors[1].tolist())


def test_split_is_stratified_disjoint_and_covering():
    _, labels = dg._load()
    train, test = dg._split_indices(labels, 0.25, seed=3)
    assert not set(train) & set(test) and sorted([*train, *test]) == list(range(len(labels)))
    for cls in range(10):
        count = (labels == cls).sum()
        assert (labels[test] == cls).sum() == round(count * 0.25)


def test_split_is_deterministic():
    a, b = dg.digits("test", seed=1), dg.digits("test", seed=1)
    assert torch.equal(a.tensors[0], b.tensors[0]) and torch.equal(a.tensors[1], b.tensors[1])
    c = dg.digits("test", seed=2)
    assert not torch.equal(a.tensors[0], c.tensors[0])
    assert len(dg.digits("test", test_fraction=0.5)) == pytest.approx(1797 / 2, abs=10)


@pytest.mark.parametrize("kwargs, message", [
    ({"split": "val"}, "unknown split 'val'"),
    ({"test_fraction": 0.0}, r"test_fraction must be in \(0, 1\)"),
    ({"test_fraction": 1.0}, r"test_fraction must be in \(0, 1\)"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dg.digits(**kwargs)


def test_missing_sklearn_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    dg._load.cache_clear()
    try:
        with pytest.raises(ImportError, match="pip install scikit-learn"):
            dg.digits()
    finally:
        dg._load.cache_clear()  # the next test loads the real module again
