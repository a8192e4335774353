"""Checkpoints: a state dict plus the onebit config, loadable with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from .binarize import BinarizeConfig, get_config

__all__ = ["load_checkpoint", "save_checkpoint"]

FORMAT = "onebit-checkpoint-1"


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
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not an onebit checkpoint (expected format {FORMAT!r})")
    config = data["onebit_config"]
    return {
        "state_dict": data["state_dict"],
        "config": None if config is None else BinarizeConfig.from_json(config),
        "extra": data["extra"],
    }
