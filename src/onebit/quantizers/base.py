"""Base class of all quantizer modules."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["PerChannelQuantizer", "Quantizer", "channel_view", "sign"]


def sign(x: torch.Tensor) -> torch.Tensor:
    """sign(x) with the onebit convention sign(0) = +1 (``torch.sign(0) = 0`` is not used anywhere)."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


def channel_view(p: torch.Tensor, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """View a per-channel vector ``p`` of shape (C,) so it broadcasts along dimension ``dim`` of ``x``.

    ``dim=1`` for activations (N, C, ...), ``dim=0`` for weights (C_out, ...).
    """
    shape = [1] * x.dim()
    shape[dim] = -1
    return p.reshape(shape)


class Quantizer(nn.Module):
    """A quantizer module: a forward q(x) whose backward is a pseudo-gradient.

    Subclasses set ``name`` (the registry key) and ``precision`` (bits of the output; 1 for
    binary) and implement ``forward`` and ``hparams`` (the constructor arguments, JSON-safe).
    """

    name: str = ""
    precision: int = 1
    #: the output domain: "pm1" (+-1, possibly scaled), "01" ({0, 1}) or "ab" (a general {alpha, beta})
    domain: str = "pm1"
    #: True for per-channel quantizers: the constructor takes ``channels`` (a layer passes its
    #: in_channels to an input quantizer and its out_channels to a weight quantizer).
    needs_channels: bool = False

    def hparams(self) -> dict[str, Any]:
        return {}

    def init_from_weight(self, weight: torch.Tensor) -> None:
        """Hook called by a layer once its (latent) weight is set; weight quantizers with a
        data-dependent initialisation (BNN+ scale, SBNN closed form) override it. Default: nothing."""

    def to_config(self) -> dict[str, Any]:
        """``{"name": ..., **hparams}``: what :func:`onebit.quantizers.get` turns back into this quantizer."""
        return {"name": self.name, **self.hparams()}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.hparams().items())


class PerChannelQuantizer(Quantizer):
    """A quantizer with parameters per channel of the tensor it quantizes.

    ``channel_dim`` is 1 for activations (N, C, ...) and 0 for weights (C_out, ...). Layers pass the
    channel count (``channels``); without it the parameters are created by the first forward call from
    the input's shape (build the optimizer after that call). Subclasses implement ``build``.
    """

    needs_channels = True
    channel_dim: int = 1

    def __init__(self, channels: int | None = None) -> None:
        super().__init__()
        if channels is not None and (not isinstance(channels, int) or isinstance(channels, bool) or channels < 1):
            raise ValueError(f"channels must be a positive int or None, got {channels!r}")
        self.channels = channels

    def _finish_init(self) -> None:
        """Call at the end of a subclass ``__init__`` (after its hyper-parameters are set)."""
        if self.channels is not None:
            self.build(self.channels)

    def build(self, channels: int, device=None) -> None:
        raise NotImplementedError

    def materialize(self, x: torch.Tensor) -> None:
        """Create the parameters from ``x``'s channel count if needed, and check it."""
        if x.dim() <= self.channel_dim:
            raise ValueError(f"{self.name} expects channels in dimension {self.channel_dim}, got shape {tuple(x.shape)}")
        count = int(x.shape[self.channel_dim])
        if self.channels is None:
            self.channels = count
            self.build(count, device=x.device)
        elif count != self.channels:
            raise ValueError(f"{self.name} was built for {self.channels} channels in dimension {self.channel_dim}, "
                             f"got shape {tuple(x.shape)}")
