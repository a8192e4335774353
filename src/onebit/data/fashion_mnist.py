"""Fashion-MNIST from its idx files (Xiao et al. 2017): 60,000 train / 10,000 test 28x28 grey images.

The Debian package ``dataset-fashion-mnist`` installs the four ``*-idx?-ubyte.gz`` files in
``/usr/share/datasets/fashion-mnist``; ``ONEBIT_FASHION_MNIST`` or ``root=`` point elsewhere
(gzip'ed or plain files). Nothing is downloaded.

idx format: 2 zero bytes, a type code, the number of dimensions n, n big-endian uint32 sizes, data.
"""

from __future__ import annotations

import functools
import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from ._util import check_split, file_signature, resolve_root

__all__ = ["CLASSES", "DEFAULT_ROOT", "MEAN", "STD", "fashion_mnist", "read_idx"]

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
          0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"
_HOW_TO_GET = ("install it with `apt-get install dataset-fashion-mnist`, or set ONEBIT_FASHION_MNIST "
               "(or pass root=) to a directory holding the four idx files")
_HOW_TO_REPAIR = ("the files are damaged: reinstall them with `apt-get install --reinstall dataset-fashion-mnist`, "
                  "or set ONEBIT_FASHION_MNIST (or pass root=) to a directory holding intact copies")


class FashionMNIST(TensorDataset):
    """A TensorDataset of (image, label) with the class names in ``classes``."""

    classes = CLASSES


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt or truncated gzip file ({exc})") from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (plain or gzip'ed, told apart by content) into a writeable native-order array."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: {len(raw)} bytes is too short for an idx header")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise ValueError(f"{path}: not an idx file (first bytes {raw[:4].hex()})")
    dtype, ndim = _TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated idx header ({len(raw)} bytes, {ndim} dimensions need {header})")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    need, found = int(np.prod(shape)) * dtype.itemsize, len(raw) - header
    if found < need:
        raise ValueError(f"{path}: truncated: shape {shape} needs {need} data bytes, found {found}")
    if found > need:
        raise ValueError(f"{path}: {found - need} trailing bytes after the data of shape {shape}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(root: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"Fashion-MNIST file {stem}(.gz) not found in {root}: {_HOW_TO_GET}")


def _read_expecting(path: Path, ndim: int) -> np.ndarray:
    """An unsigned-byte idx array with ``ndim`` dims; the magic number is (type << 8) | ndim."""
    array = read_idx(path)
    code = next(c for c, d in _TYPES.items() if d.newbyteorder("=") == array.dtype)
    magic, expected = (code << 8) | array.ndim, (0x08 << 8) | ndim
    if array.dtype != np.uint8 or array.ndim != ndim:
        raise ValueError(f"{path}: idx magic {magic} "
                         f"(type {array.dtype}, {array.ndim} dims), expected {expected} (unsigned bytes, {ndim} dims)")
    return array


@functools.lru_cache(maxsize=4)
def _load(images_path: Path, labels_path: Path, _signature: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = _read_expecting(images_path, 3), _read_expecting(labels_path, 1)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{labels_path}: {labels.shape[0]} labels for {images.shape[0]} images in {images_path}")
    if images.shape[1:] != (28, 28):
        raise ValueError(f"{images_path}: images of shape {images.shape[1:]}, expected (28, 28)")
    if labels.size and labels.max() >= len(CLASSES):
        raise ValueError(f"{labels_path}: label {labels.max()} out of range [0, {len(CLASSES)})")
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def fashion_mnist(split: str = "train", *, root: str | os.PathLike | None = None,
                  normalize: bool = True) -> FashionMNIST:
    """Fashion-MNIST as a TensorDataset of float32 images (N, 1, 28, 28) and int64 labels.

    Pixels are scaled to [0, 1], then standardized with the training set's mean and std when
    ``normalize``. Decoded files are cached in-process (re-read when a file changes); every call
    returns fresh tensors.
    """
    check_split(split, list(_FILES), "Fashion-MNIST")
    root = resolve_root(root, "ONEBIT_FASHION_MNIST", DEFAULT_ROOT)
    if not root.is_dir():
        raise FileNotFoundError(f"Fashion-MNIST directory {root} does not exist: {_HOW_TO_GET}")
    paths = [_find(root, stem) for stem in _FILES[split]]
    try:
        images, labels = _load(*paths, file_signature(paths))
    except ValueError as exc:
        raise ValueError(f"{exc}; {_HOW_TO_REPAIR}") from None
    x = images.float() / 255.0
    if normalize:
        x = (x - MEAN) / STD
    return FashionMNIST(x, labels.clone())
