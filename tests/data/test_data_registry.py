"""onebit.data.get: names, aliases, errors."""

from __future__ import annotations

import pytest

import onebit.data as data


def test_names():
    assert data.list_datasets() == ["cifar10", "cifar100", "digits", "fashion-mnist", "imagefolder"]


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist'; valid names: \['cifar10', .*'imagefolder'\]"):
        data.get("mnist", "train")


def test_aliases_and_kwargs_reach_the_loader(tmp_path):
    for name in ("fashion-mnist", "fashion_mnist", "Fashion-MNIST"):
        with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
            data.get(name, "test", root=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="cifar-100-python.tar.gz"):
        data.get("cifar100", "test", root=tmp_path / "nowhere", label="coarse")


def test_digits_through_the_registry():
    pytest.importorskip("sklearn")
    assert len(data.get("digits", "test", test_fraction=0.5, seed=0)) == len(data.digits("test", test_fraction=0.5))
