"""Checkpoints: a state dict plus the onebit config, loadable with ``torch.load(weights_only=True)``.

Loading never unpickles arbitrary objects, and a truncated, corrupt or foreign file raises
:class:`CheckpointError` naming the file and what is wrong, never a raw zip or pickle error.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

import torch
from torch import nn

from .binarize import BinarizeConfig, get_config

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]

FORMAT = "onebit-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint is truncated or corrupt, holds objects a weights-only load refuses, or is not
    an onebit checkpoint."""


def save_checkpoint(path: str | os.PathLike, model: nn.Module, *, extra: dict[str, Any] | None = None) -> None:
    """Save ``model``'s state dict, its binarize config (as a JSON string) and JSON-safe ``extra``."""
    config = get_config(model)
    torch.save({
        "format": FORMAT,
        "state_dict": model.state_dict(),
        "onebit_config": None if config is None else config.to_json(),
        "extra": extra or {},
    }, path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (never unpickles arbitrary objects).

    Returns ``{"state_dict", "config" (BinarizeConfig or None), "extra"}``.
    """
    data = _load_weights_only(path)
    name = os.fspath(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{name!r} is not an onebit checkpoint (expected format {FORMAT!r})")
    state, config, extra = data.get("state_dict"), data.get("onebit_config", False), data.get("extra")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise CheckpointError(f"{name!r}: 'state_dict' is not a mapping of names to tensors")
    if not (config is None or isinstance(config, str)) or not isinstance(extra, dict):
        raise CheckpointError(f"{name!r}: 'onebit_config' must be a JSON string or None and 'extra' a dict")
    try:
        config = None if config is None else BinarizeConfig.from_json(config)
    except Exception as exc:  # noqa: BLE001 - any damage in the stored config is the file's fault
        raise CheckpointError(f"{name!r}: its binarize config cannot be read: {exc}") from exc
    return {"state_dict": state, "config": config, "extra": extra}


def _load_weights_only(path: str | os.PathLike) -> Any:
    """``torch.load(weights_only=True)`` with every failure but a missing/unreadable file turned into
    a :class:`CheckpointError` (torch raises RuntimeError, EOFError, UnpicklingError, KeyError, ...)."""
    name = os.fspath(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{name!r} cannot be loaded safely: it is corrupt, or holds objects other than tensors and plain "
            f"containers, which onebit never loads (weights_only=True; do not retry with weights_only=False "
            f"unless you trust where the file came from). torch said: {first[:300]}") from exc
    except Exception as exc:  # noqa: BLE001 - zip/pickle damage surfaces as many exception types
        detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise CheckpointError(f"{name!r} is truncated or corrupt (not a complete torch.save file; "
                              f"{type(exc).__name__}: {detail})") from exc
