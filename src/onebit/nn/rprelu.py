"""ReActNet's learnable shifts: LearnableBias and RPReLU (Liu et al., "ReActNet", ECCV 2020, arXiv 2003.03488)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..quantizers import channel_view

__all__ = ["LearnableBias", "RPReLU"]


def _check_channels(channels: int) -> None:
    if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
        raise ValueError(f"channels must be a positive int, got {channels!r}")


class LearnableBias(nn.Module):
    """y = x + b_c with a learnable per-channel bias b (shape (C,), init ``init``); channels in dimension 1."""

    def __init__(self, channels: int, init: float = 0.0) -> None:
        super().__init__()
        _check_channels(channels)
        self.bias = nn.Parameter(torch.full((channels,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + channel_view(self.bias, x)


class RPReLU(nn.Module):
    """y = PReLU_beta(x - gamma_c) + zeta_c, per channel (ReActNet).

    Parameters (each shape (C,)): ``shift_in`` gamma (init 0), ``slope`` beta (init 0.25),
    ``shift_out`` zeta (init 0). The authors' code: LearnableBias -> PReLU -> LearnableBias, with the
    two shifts stored as (1, C, 1, 1) tensors (which its weight-decay rule then decays).
    """

    def __init__(self, channels: int, slope_init: float = 0.25) -> None:
        super().__init__()
        _check_channels(channels)
        self.channels = channels
        self.shift_in = nn.Parameter(torch.zeros(channels))
        self.slope = nn.Parameter(torch.full((channels,), float(slope_init)))
        self.shift_out = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.prelu(x - channel_view(self.shift_in, x), self.slope) + channel_view(self.shift_out, x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"
