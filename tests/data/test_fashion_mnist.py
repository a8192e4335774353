"""Fashion-MNIST: idx parsing on small files written here (plain and gzip), errors, the real data."""

from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import onebit.data  # noqa: F401  (the function onebit.data.fashion_mnist shadows the module name)

fm = sys.modules["onebit.data.fashion_mnist"]

NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
TYPE_CODES = {np.dtype("u1"): 0x08, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}


def idx_bytes(array: np.ndarray, dtype: str = "u1") -> bytes:
    dt = np.dtype(dtype)
    header = bytes([0, 0, TYPE_CODES[dt], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=dt).tobytes()


def write(path: Path, data: bytes, gz: bool) -> Path:
    path = path.with_name(path.name + ".gz") if gz else path
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def make_split(root: Path, split: str, n: int, *, gz: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    write(root / NAMES[split][0], idx_bytes(images), gz)
    write(root / NAMES[split][1], idx_bytes(labels), gz)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", ["u1", ">i2", ">i4", ">f4"])
def test_read_idx_round_trip(tmp_path, gz, dtype):
    array = np.arange(2 * 3 * 5).reshape(2, 3, 5).astype(dtype)
    path = write(tmp_path / "a-idx3", idx_bytes(array, dtype), gz)
    out = fm.read_idx(path)
    np.testing.assert_array_equal(out, array)
    assert out.dtype == np.dtype(dtype).newbyteorder("=") and out.flags.writeable


@pytest.mark.parametrize("gz", [False, True])
def test_fashion_mnist_from_small_files(tmp_path, gz):
    images, labels = make_split(tmp_path, "train", 5, gz=gz)
    make_split(tmp_path, "test", 3, gz=gz, seed=1)
    raw = fm.fashion_mnist("train", root=tmp_path, normalize=False)
    x, y = raw.tensors
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.tolist() == labels.tolist()
    torch.testing.assert_close(x, torch.from_numpy(images).unsqueeze(1).float() / 255, rtol=0, atol=0)
    normed = fm.fashion_mnist("train", root=tmp_path).tensors[0]
    torch.testing.assert_close(normed, (x - fm.MEAN) / fm.STD)
    assert len(fm.fashion_mnist("test", root=tmp_path)) == 3
    assert raw.classes[0] == "T-shirt/top" and len(raw.classes) == 10


def test_env_var_sets_the_default_root(tmp_path, monkeypatch):
    make_split(tmp_path, "test", 2, gz=False)
    monkeypatch.setenv("ONEBIT_FASHION_MNIST", str(tmp_path))
    assert len(fm.fashion_mnist("test")) == 2


def test_decoded_files_are_cached_and_reread_when_replaced(tmp_path, monkeypatch):
    make_split(tmp_path, "train", 4, gz=True)
    reads = []
    real = fm.read_idx
    monkeypatch.setattr(fm, "read_idx", lambda path, **kw: reads.append(path) or real(path, **kw))
    first = fm.fashion_mnist("train", root=tmp_path)
    second = fm.fashion_mnist("train", root=tmp_path)
    assert len(reads) == 2  # images and labels, once
    second.tensors[1].zero_()  # a caller's in-place edit does not reach the cache
    assert fm.fashion_mnist("train", root=tmp_path).tensors[1].tolist() == first.tensors[1].tolist()
    make_split(tmp_path, "train", 6, gz=True)
    assert len(fm.fashion_mnist("train", root=tmp_path)) == 6 and len(reads) == 4


def test_missing_directory_says_how_to_get_the_data(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as info:
        fm.fashion_mnist("train", root=tmp_path / "nowhere")
    assert "ONEBIT_FASHION_MNIST" in str(info.value) and "root=" in str(info.value)


def test_missing_file_is_named(tmp_path):
    make_split(tmp_path, "train", 2, gz=False)
    (tmp_path / NAMES["train"][1]).unlink()
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte.*apt-get install"):
        fm.fashion_mnist("train", root=tmp_path)


def test_unknown_split():
    with pytest.raises(ValueError, match=r"unknown split 'val'; valid splits: \['train', 'test'\]"):
        fm.fashion_mnist("val")


def _corrupt(kind: str) -> bytes:
    good = idx_bytes(np.zeros((2, 28, 28), np.uint8))
    return {
        "truncated data": good[:-10],
        "trailing bytes": good + b"\0",
        "truncated header": good[:9],
        "too short": good[:3],
        "wrong magic": idx_bytes(np.zeros(2, np.uint8)),  # a labels file where images belong
        "not idx": b"\x89PNG" + good[4:],
        "corrupt gzip": gzip.compress(good)[:-20],
    }[kind]


@pytest.mark.parametrize("kind, message", [
    ("truncated data", r"truncated: shape \(2, 28, 28\) needs 1568 data bytes, found 1558"),
    ("trailing bytes", "trailing bytes"),
    ("truncated header", "truncated idx header"),
    ("too short", "too short for an idx header"),
    ("wrong magic", "idx magic 2049 .*expected 2051"),
    ("not idx", "not an idx file"),
    ("corrupt gzip", "corrupt or truncated gzip"),
])
def test_corrupt_files_raise_naming_the_file(tmp_path, kind, message):
    make_split(tmp_path, "train", 2, gz=False)
    (tmp_path / NAMES["train"][0]).write_bytes(_corrupt(kind))
    with pytest.raises(ValueError, match=message) as info:
        fm.fashion_mnist("train", root=tmp_path)
    assert NAMES["train"][0] in str(info.value)


def test_inconsistent_files(tmp_path):
    make_split(tmp_path, "train", 2, gz=False)
    labels = tmp_path / NAMES["train"][1]
    labels.write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(ValueError, match="3 labels for 2 images"):
        fm.fashion_mnist("train", root=tmp_path)
    labels.write_bytes(idx_bytes(np.array([0, 10], np.uint8)))
    with pytest.raises(ValueError, match=r"label 10 out of range \[0, 10\)"):
        fm.fashion_mnist("train", root=tmp_path)
    (tmp_path / NAMES["train"][0]).write_bytes(idx_bytes(np.zeros((2, 32, 32), np.uint8)))
    with pytest.raises(ValueError, match=r"images of shape \(32, 32\), expected \(28, 28\)"):
        fm.fashion_mnist("train", root=tmp_path)


@pytest.mark.skipif(not Path(fm.DEFAULT_ROOT).is_dir(), reason="dataset-fashion-mnist is not installed")
def test_real_fashion_mnist():
    train = fm.fashion_mnist("train", root=fm.DEFAULT_ROOT, normalize=False)
    test = fm.fashion_mnist("test", root=fm.DEFAULT_ROOT)
    assert len(train) == 60000 and len(test) == 10000
    x, y = train.tensors
    assert x.shape == (60000, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert 0 <= x.min() and x.max() <= 1 and abs(x.mean().item() - fm.MEAN) < 1e-3
    assert y.bincount().tolist() == [6000] * 10
    assert test.tensors[1].bincount().tolist() == [1000] * 10
    assert abs(test.tensors[0].mean().item()) < 0.05  # standardized with the training statistics
