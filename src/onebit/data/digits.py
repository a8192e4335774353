"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, UCI optdigits test set).

The data ships inside scikit-learn (``sklearn.datasets.load_digits``): nothing is downloaded.
There is no official split, so ``digits`` makes a deterministic, stratified one from ``seed``.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch.utils.data import TensorDataset

from ._util import check_split

__all__ = ["digits"]

SPLITS = ("train", "test")
MAX_VALUE = 16.0  # pixels are counts of set bits in 4x4 blocks of a 32x32 bitmap: 0..16


@functools.lru_cache(maxsize=1)
def _load() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError("onebit.data.digits needs scikit-learn (it bundles the data): "
                          "pip install scikit-learn") from exc
    bunch = load_digits()
    return bunch.images.astype(np.float32), bunch.target.astype(np.int64)


def _split_indices(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class, a seeded permutation; its first round(count * test_fraction) go to test."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def digits(split: str = "train", *, test_fraction: float = 0.2, seed: int = 0) -> TensorDataset:
    """The ``"train"`` or ``"test"`` part of the digits as a ``TensorDataset``.

    Images: float32 (N, 1, 8, 8) in [0, 1]; labels: int64 in [0, 10). The split is stratified by
    class and depends only on ``test_fraction`` and ``seed`` (same arguments, same samples, in the
    original order); the two parts are disjoint and cover the 1,797 images.
    """
    check_split(split, SPLITS, "digits")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"digits: test_fraction must be in (0, 1), got {test_fraction}")
    images, labels = _load()
    train_idx, test_idx = _split_indices(labels, test_fraction, seed)
    idx = train_idx if split == "train" else test_idx
    x = torch.from_numpy(images[idx] / MAX_VALUE).unsqueeze(1)
    return TensorDataset(x.to(torch.float32), torch.from_numpy(labels[idx]))
