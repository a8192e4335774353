"""Base class of all quantizer modules."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["Quantizer", "sign"]


def sign(x: torch.Tensor) -> torch.Tensor:
    """sign(x) with the onebit convention sign(0) = +1 (``torch.sign(0) = 0`` is not used anywhere)."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


class Quantizer(nn.Module):
    """A quantizer module: a forward q(x) whose backward is a pseudo-gradient.

    Subclasses set ``name`` (the registry key) and ``precision`` (bits of the output; 1 for
    binary) and implement ``forward`` and ``hparams`` (the constructor arguments, JSON-safe).
    """

    name: str = ""
    precision: int = 1
    #: the output domain: "pm1" (+-1, possibly scaled) or "01" ({0, 1})
    domain: str = "pm1"

    def hparams(self) -> dict[str, Any]:
        return {}

    def to_config(self) -> dict[str, Any]:
        """``{"name": ..., **hparams}``: what :func:`onebit.quantizers.get` turns back into this quantizer."""
        return {"name": self.name, **self.hparams()}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.hparams().items())
