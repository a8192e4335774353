"""DyBNN's dynamic PReLU: per-sample shifts computed from the input by a hyper function.

Zhang et al., "Dynamic Binary Neural Network by learning channel-wise thresholds", ICASSP 2022
(arXiv 2110.05185). No code was released; the head is onebit's reconstruction (methods.md 5.3): the
same hyper function as DySign (:class:`onebit.quantizers.ChannelHyperFunction`) with 2C outputs.
DySign itself is a quantizer (``onebit.quantizers.DySign``, registry name ``"dysign"``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..quantizers import ChannelHyperFunction

__all__ = ["DyPReLU"]


class DyPReLU(nn.Module):
    """y = PReLU_beta(x - gamma(x)) + zeta(x) with [gamma(x), zeta(x)] = h(x) in R^{N x 2C}.

    h = FC2(ReLU(FC1(GAP(x)))), FC1: C -> C/r, FC2: C/r -> 2C (zero-initialised, so DyPReLU starts as
    RPReLU with zero shifts); beta is an ordinary per-channel PReLU slope (init 0.25). The head input is
    the tensor the activation receives (the paper's choice is not known; methods.md 5.3).
    """

    def __init__(self, channels: int, reduction: int = 16, slope_init: float = 0.25, statistic: str = "mean") -> None:
        super().__init__()
        self.channels = channels
        self.hyper = ChannelHyperFunction(channels, 2 * channels, reduction, statistic)
        self.slope = nn.Parameter(torch.full((channels,), float(slope_init)))

    def shifts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(gamma(x), zeta(x)), each (N, C)."""
        gamma, zeta = self.hyper(x).chunk(2, dim=1)
        return gamma, zeta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gamma, zeta = self.shifts(x)
        spatial = [1] * (x.dim() - 2)
        y = F.prelu(x - gamma.reshape(*gamma.shape, *spatial), self.slope)
        return y + zeta.reshape(*zeta.shape, *spatial)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.hyper.reduction}"
