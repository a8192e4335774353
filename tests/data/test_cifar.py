"""CIFAR-10/100 on small batch files written here in the real "python version" format."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from onebit.data import cifar10, cifar100
from onebit.data.cifar import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD


def dump(path: Path, obj, protocol: int = 2) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def batch(n: int, rng, labels: dict[bytes, int]) -> dict:
    out = {b"batch_label": b"training batch", b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
           b"filenames": [b"img_%d.png" % i for i in range(n)]}
    for key, classes in labels.items():
        out[key] = rng.integers(0, classes, n).tolist()
    return out


def make_cifar10(root: Path, protocol: int = 2) -> dict[str, list[dict]]:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train = [batch(n, rng, {b"labels": 10}) for n in (3, 2, 4, 1, 2)]
    test = [batch(5, rng, {b"labels": 10})]
    for i, b in enumerate(train, 1):
        dump(root / f"data_batch_{i}", b, protocol)
    dump(root / "test_batch", test[0], protocol)
    dump(root / "batches.meta", {b"label_names": [b"c%d" % i for i in range(10)], b"num_vis": 3072}, protocol)
    return {"train": train, "test": test}


def make_cifar100(root: Path) -> dict[str, dict]:
    root.mkdir(parents=True)
    rng = np.random.default_rng(1)
    labels = {b"fine_labels": 100, b"coarse_labels": 20}
    parts = {split: batch(n, rng, labels) for split, n in (("train", 6), ("test", 4))}
    for split, b in parts.items():
        dump(root / split, b)
    dump(root / "meta", {b"fine_label_names": [b"f%d" % i for i in range(100)],
                         b"coarse_label_names": [b"g%d" % i for i in range(20)]})
    return parts


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_layout_labels_and_normalization(tmp_path, protocol):
    parts = make_cifar10(tmp_path / "cifar-10-batches-py", protocol)
    train = cifar10("train", root=tmp_path / "cifar-10-batches-py", normalize=False)
    x, y = train.tensors
    assert x.shape == (12, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert y.tolist() == [lab for b in parts["train"] for lab in b[b"labels"]]
    rows = np.concatenate([b[b"data"] for b in parts["train"]])
    # row layout: 1024 red, 1024 green, 1024 blue, each 32x32 row-major
    n, c, h, w = 7, 2, 5, 30
    assert x[n, c, h, w].item() == pytest.approx(rows[n, c * 1024 + h * 32 + w] / 255)
    assert train.classes == [f"c{i}" for i in range(10)]
    normed = cifar10("train", root=tmp_path).tensors[0]  # the parent of cifar-10-batches-py works too
    mean, std = torch.tensor(CIFAR10_MEAN).view(3, 1, 1), torch.tensor(CIFAR10_STD).view(3, 1, 1)
    torch.testing.assert_close(normed, (x - mean) / std)
    assert len(cifar10("test", root=tmp_path)) == 5


def test_cifar10_env_var(tmp_path, monkeypatch):
    make_cifar10(tmp_path / "c10")
    monkeypatch.setenv("ONEBIT_CIFAR10", str(tmp_path / "c10"))
    assert len(cifar10("test")) == 5


@pytest.mark.parametrize("label, key, classes", [("fine", b"fine_labels", 100), ("coarse", b"coarse_labels", 20)])
def test_cifar100_fine_and_coarse(tmp_path, label, key, classes):
    parts = make_cifar100(tmp_path / "cifar-100-python")
    ds = cifar100("test", root=tmp_path, label=label)
    assert ds.tensors[0].shape == (4, 3, 32, 32)
    assert ds.tensors[1].tolist() == parts["test"][key]
    assert len(ds.classes) == classes and ds.classes[1] == ("f1" if label == "fine" else "g1")
    raw = cifar100("train", root=tmp_path, normalize=False, label=label).tensors[0]
    normed = cifar100("train", root=tmp_path, label=label).tensors[0]
    mean, std = torch.tensor(CIFAR100_MEAN).view(3, 1, 1), torch.tensor(CIFAR100_STD).view(3, 1, 1)
    torch.testing.assert_close(normed, (raw - mean) / std)


def test_meta_file_is_optional(tmp_path):
    make_cifar10(tmp_path / "c10")
    (tmp_path / "c10" / "batches.meta").unlink()
    assert cifar10("test", root=tmp_path / "c10").classes is None


def test_missing_data_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("ONEBIT_CIFAR10", raising=False)
    with pytest.raises(FileNotFoundError, match="no data directory given.*cifar-10-python.tar.gz.*root="):
        cifar10("train")
    with pytest.raises(FileNotFoundError, match=r"does not exist.*cs.toronto.edu/~kriz/cifar.html"):
        cifar100("train", root=tmp_path / "nowhere")
    make_cifar10(tmp_path / "c10")
    (tmp_path / "c10" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks \['data_batch_3'\]"):
        cifar10("train", root=tmp_path / "c10")


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown split 'val'"):
        cifar10("val", root=tmp_path)
    with pytest.raises(ValueError, match="label must be 'fine' or 'coarse'"):
        cifar100("train", root=tmp_path, label="super")


class _Evil:
    def __reduce__(self):
        return (print, ("this must not run",))


@pytest.mark.parametrize("content, message", [
    ({b"labels": [0]}, r"missing key b'data'"),
    ({b"data": np.zeros((1, 3072), np.uint8)}, r"missing key b'labels'"),
    ({b"data": np.zeros((1, 3000), np.uint8), b"labels": [0]},
     r"uint8 array of shape \(N, 3072\), found uint8 \(1, 3000\)"),
    ({b"data": np.zeros((1, 3072), np.float32), b"labels": [0]}, "found float32"),
    ({b"data": [[0] * 3072], b"labels": [0]}, "found list"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "must be 2 ints"),
    ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, r"out of range \[0, 10\)"),
    ([1, 2], "expected a pickled dict, found list"),
    ({b"data": _Evil(), b"labels": [0]}, r"refusing to load (__builtin__|builtins)\.print"),
])
def test_invalid_batches_raise_naming_the_file(tmp_path, content, message, capsys):
    make_cifar10(tmp_path / "c10")
    dump(tmp_path / "c10" / "test_batch", content)
    with pytest.raises(ValueError, match=message) as info:
        cifar10("test", root=tmp_path / "c10")
    assert "test_batch" in str(info.value)
    assert capsys.readouterr().out == ""


def test_truncated_pickle(tmp_path):
    make_cifar10(tmp_path / "c10")
    path = tmp_path / "c10" / "test_batch"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="test_batch: not a valid CIFAR python-version batch"):
        cifar10("test", root=tmp_path / "c10")


def test_numpy_1_global_names_load(tmp_path):
    """Files written by numpy 1.x or Python 2 name numpy.core.multiarray._reconstruct."""
    make_cifar10(tmp_path / "c10")
    path = tmp_path / "c10" / "test_batch"
    raw = path.read_bytes()
    assert b"numpy._core.multiarray" in raw
    path.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    expected = pickle.loads(raw)[b"labels"]
    assert cifar10("test", root=tmp_path / "c10").tensors[1].tolist() == expected
