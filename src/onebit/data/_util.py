"""Small helpers shared by the dataset loaders: split checks, root resolution, cache keys."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch

__all__ = ["check_split", "file_signature", "normalize_", "resolve_root"]


def check_split(split: str, valid: Sequence[str], dataset: str) -> str:
    """``split`` if it is one of ``valid``, else a ``ValueError`` listing them."""
    if split not in valid:
        raise ValueError(f"{dataset}: unknown split {split!r}; valid splits: {list(valid)}")
    return split


def resolve_root(root: str | os.PathLike | None, env: str, default: str | None = None) -> Path | None:
    """``root`` if given, else the environment variable ``env`` if set, else ``default``."""
    if root is not None:
        return Path(root).expanduser()
    value = os.environ.get(env)
    if value:
        return Path(value).expanduser()
    return None if default is None else Path(default)


def file_signature(paths: Sequence[Path]) -> tuple[tuple[str, int, int], ...]:
    """(path, size, mtime) of each file: part of a cache key, so a replaced file is read again."""
    out = []
    for path in paths:
        stat = path.stat()
        out.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(out)


def normalize_(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """In place: ``(x - mean) / std`` per channel of an (N, C, H, W) tensor; returns ``x``."""
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return x.sub_(m).div_(s)
