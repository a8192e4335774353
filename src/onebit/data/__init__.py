"""Datasets and augmentation; nothing here downloads anything.

* ``fashion_mnist``: the idx files of the Debian package ``dataset-fashion-mnist``;
* ``digits``: scikit-learn's bundled 8x8 digits;
* ``cifar10`` / ``cifar100``: the user's extracted "python version" pickles;
* ``ImageFolder``: the user's ``root/<class>/<image>`` tree (ImageNet layout);
* ``transforms``: crops, flips, resizing and normalization in plain torch.

``get(name, split, **kw)`` picks one by name (``-`` and ``_`` are interchangeable).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from torch.utils.data import Dataset

from ..registry import Registry
from . import transforms
from .cifar import cifar10, cifar100
from .digits import digits
from .fashion_mnist import fashion_mnist, read_idx
from .imagefolder import ImageFolder

__all__ = ["DATASETS", "ImageFolder", "cifar10", "cifar100", "digits", "fashion_mnist", "get",
           "list_datasets", "read_idx", "transforms"]

DATASETS: Registry[Callable[..., Dataset]] = Registry("dataset")
DATASETS.register("fashion-mnist")(fashion_mnist)
DATASETS.register("digits")(digits)
DATASETS.register("cifar10")(cifar10)
DATASETS.register("cifar100")(cifar100)


@DATASETS.register("imagefolder")
def _imagefolder(split: str = "train", *, root: str | os.PathLike | None = None, **kwargs: Any) -> ImageFolder:
    """``ImageFolder(root / split)``: ``root`` holds one folder per split (e.g. ``train``, ``val``)."""
    if root is None:
        raise ValueError("imagefolder needs root=, a directory holding <split>/<class>/<image>")
    return ImageFolder(Path(root).expanduser() / split, **kwargs)


def list_datasets() -> list[str]:
    """Names accepted by :func:`get`."""
    return DATASETS.names()


def get(name: str, split: str = "train", **kwargs: Any) -> Dataset:
    """The ``split`` of dataset ``name`` (see :func:`list_datasets`); ``kwargs`` go to its loader.

    Unknown names raise ``ValueError`` listing the valid ones.
    """
    key = name.lower().replace("_", "-") if isinstance(name, str) else name
    return DATASETS[key](split, **kwargs)
