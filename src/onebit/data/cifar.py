"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) from the "CIFAR-10 python version" pickles.

Nothing is downloaded: get ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` from
https://www.cs.toronto.edu/~kriz/cifar.html, extract it, and pass ``root=`` (or set
``ONEBIT_CIFAR10`` / ``ONEBIT_CIFAR100``) to ``cifar-10-batches-py`` / ``cifar-100-python`` or to
the directory holding it.

Format: each batch is a pickled dict (bytes keys) with ``b"data"``, a uint8 (N, 3072) array whose
rows are one image in CHW order (1024 red, 1024 green, 1024 blue values, each row-major 32x32), and
``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` / ``b"coarse_labels"`` (CIFAR-100), lists of ints.
The files are unpickled with an allow-list that admits only numpy arrays, so a file that is not
a CIFAR batch cannot run code.
"""

from __future__ import annotations

import codecs
import functools
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from ._util import check_split, file_signature, normalize_, resolve_root

__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "CIFAR100_MEAN", "CIFAR100_STD", "cifar10", "cifar100"]

# Per-channel statistics of the training images scaled to [0, 1] (the std is over all pixels,
# not the mean of per-image stds that some code uses).
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)

SPLITS = ("train", "test")
IMAGE_SHAPE = (3, 32, 32)
ROW_BYTES = 3 * 32 * 32
URL = "https://www.cs.toronto.edu/~kriz/cifar.html"

# Each entry: env var, directory name, files per split, meta file, label key -> (meta key, classes).
_SPECS: dict[str, dict[str, Any]] = {
    "cifar10": {"env": "ONEBIT_CIFAR10", "dir": "cifar-10-batches-py", "archive": "cifar-10-python.tar.gz",
                "files": {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
                "meta": "batches.meta", "labels": {"labels": ("label_names", 10)}},
    "cifar100": {"env": "ONEBIT_CIFAR100", "dir": "cifar-100-python", "archive": "cifar-100-python.tar.gz",
                 "files": {"train": ["train"], "test": ["test"]}, "meta": "meta",
                 "labels": {"fine_labels": ("fine_label_names", 100),
                            "coarse_labels": ("coarse_label_names", 20)}},
}


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The only globals a CIFAR pickle may name: how numpy (1.x, 2.x, Python 2) pickles arrays."""
    reconstruct = np.zeros(1).__reduce__()[0]
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]
    scalar = np.float64(0).__reduce__()[0]
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
               ("_codecs", "encode"): codecs.encode}  # Python 3 bytes at protocol < 3
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return allowed


class _Unpickler(pickle.Unpickler):
    _allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR batch holds only numpy arrays, lists and bytes"
            ) from None


def _unpickle(path: Path) -> dict[str, Any]:
    """A batch file as a dict with str keys."""
    try:
        with open(path, "rb") as f:
            obj = _Unpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            OverflowError) as exc:
        raise ValueError(f"{path}: not a valid CIFAR python-version batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a pickled dict, found {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    for key in ("data", label_key):
        if key not in batch:
            raise ValueError(f"{path}: missing key b{key!r}; found {sorted(batch)}")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != ROW_BYTES:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{path}: b'data' must be a uint8 array of shape (N, {ROW_BYTES}), found {desc}")
    labels = np.asarray(batch[label_key])
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: b{label_key!r} must be {data.shape[0]} ints, found {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{path}: b{label_key!r} out of range [0, {num_classes}): "
                         f"min {labels.min()}, max {labels.max()}")
    return data, labels.astype(np.int64)


def _directory(name: str, root: str | os.PathLike | None) -> Path:
    spec = _SPECS[name]
    hint = (f"Download {spec['archive']} (python version) from {URL}, extract it, and pass root= "
            f"(or set {spec['env']}) to the extracted {spec['dir']} directory. Nothing is downloaded "
            f"automatically.")
    directory = resolve_root(root, spec["env"])
    if directory is None:
        raise FileNotFoundError(f"{name}: no data directory given. {hint}")
    if (directory / spec["dir"]).is_dir():
        directory = directory / spec["dir"]
    if not directory.is_dir():
        raise FileNotFoundError(f"{name}: directory {directory} does not exist. {hint}")
    return directory


def _paths(name: str, directory: Path, split: str) -> list[Path]:
    spec = _SPECS[name]
    paths = [directory / f for f in spec["files"][split]]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{name}: {directory} lacks {missing} (expected the extracted "
                                f"{spec['archive']} from {URL})")
    return paths


@functools.lru_cache(maxsize=4)
def _decode(name: str, signature: tuple[tuple[str, int, int], ...],
            label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 3, 32, 32) and int64 labels, cached per (files, label key)."""
    num_classes = _SPECS[name]["labels"][label_key][1]
    parts = [_batch(Path(s[0]), label_key, num_classes) for s in signature]
    data = np.concatenate([d for d, _ in parts]).reshape(-1, *IMAGE_SHAPE)
    labels = np.concatenate([lab for _, lab in parts])
    return torch.from_numpy(data), torch.from_numpy(labels)


def _classes(name: str, directory: Path, label_key: str) -> list[str] | None:
    """Class names from the meta file, or None when it is absent."""
    spec = _SPECS[name]
    meta_key, num_classes = spec["labels"][label_key]
    path = directory / spec["meta"]
    if not path.is_file():
        return None
    meta = _unpickle(path)
    names = meta.get(meta_key)
    if not isinstance(names, list) or len(names) != num_classes:
        raise ValueError(f"{path}: b{meta_key!r} must list {num_classes} class names")
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]


def _load(name: str, split: str, root: str | os.PathLike | None, normalize: bool, label_key: str,
          mean: tuple[float, ...], std: tuple[float, ...]) -> TensorDataset:
    check_split(split, SPLITS, name)
    directory = _directory(name, root)
    images, labels = _decode(name, file_signature(_paths(name, directory, split)), label_key)
    x = images.to(torch.float32).div_(255.0)
    if normalize:
        normalize_(x, mean, std)
    dataset = TensorDataset(x, labels.clone())
    dataset.classes = _classes(name, directory, label_key)  # type: ignore[attr-defined]
    return dataset


def cifar10(split: str = "train", *, root: str | os.PathLike | None = None, normalize: bool = True) -> TensorDataset:
    """CIFAR-10 ``"train"`` (50,000) or ``"test"`` (10,000) as a ``TensorDataset``.

    Images: float32 (N, 3, 32, 32) in [0, 1], standardized per channel with ``CIFAR10_MEAN`` /
    ``CIFAR10_STD`` when ``normalize``; labels: int64 in [0, 10). ``classes``: names from
    ``batches.meta`` when present.
    """
    return _load("cifar10", split, root, normalize, "labels", CIFAR10_MEAN, CIFAR10_STD)


def cifar100(split: str = "train", *, root: str | os.PathLike | None = None, normalize: bool = True,
             label: str = "fine") -> TensorDataset:
    """CIFAR-100 ``"train"`` (50,000) or ``"test"`` (10,000) as a ``TensorDataset``.

    Images as in :func:`cifar10` (with ``CIFAR100_MEAN`` / ``CIFAR100_STD``); labels: int64, the
    100 ``"fine"`` classes or the 20 ``"coarse"`` superclasses. ``classes``: names from ``meta``.
    """
    if label not in ("fine", "coarse"):
        raise ValueError(f"cifar100: label must be 'fine' or 'coarse', got {label!r}")
    return _load("cifar100", split, root, normalize, f"{label}_labels", CIFAR100_MEAN, CIFAR100_STD)
