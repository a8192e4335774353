"""DySign: sign with dynamic, input-dependent channel-wise thresholds (DyBNN).

Zhang, Su, Feng, Lu, Pietikäinen, Liu, "Dynamic Binary Neural Network by learning channel-wise
thresholds", ICASSP 2022 (arXiv 2110.05185); extended as "Boosting Binary Neural Networks via Dynamic
Thresholds Learning" (arXiv 2211.02292). No code was released; the hyper function below is onebit's
reconstruction (methods.md 5.2, 9.9): global average pooling, FC(C -> C/r), ReLU, FC(C/r -> C).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import PerChannelQuantizer
from .registry import QUANTIZERS
from .sign import approx_sign

__all__ = ["ChannelHyperFunction", "DySign", "global_pool"]

STATISTICS = ("mean", "mean_std")
BOUNDS = ("none", "tanh")


def global_pool(x: torch.Tensor, statistic: str = "mean") -> torch.Tensor:
    """Per-sample channel statistics: (N, C, ...) -> (N, C) means, or (N, 2C) means and std's.

    A 2-D input (N, C) has no spatial extent: its mean is itself and its std is 0.
    """
    if x.dim() < 2:
        raise ValueError(f"global_pool expects (N, C, ...), got shape {tuple(x.shape)}")
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    mean = flat.mean(dim=2)
    if statistic == "mean":
        return mean
    std = flat.std(dim=2, unbiased=False)
    return torch.cat([mean, std], dim=1)


class ChannelHyperFunction(nn.Module):
    """The "hyper function" of DyBNN: global channel statistics -> FC -> ReLU -> FC.

    h(x) = FC2(ReLU(FC1(GAP(x)))), FC1: C_stat -> max(1, C // reduction), FC2: -> ``out_features``,
    both with bias. FC2 starts at zero (weight and bias), so h(x) = 0 at init and a DySign starts as
    ReActNet's RSign, a DyPReLU as RPReLU with zero shifts.
    """

    def __init__(self, channels: int, out_features: int, reduction: int = 16, statistic: str = "mean") -> None:
        super().__init__()
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        if not isinstance(reduction, int) or reduction < 1:
            raise ValueError(f"reduction must be a positive int (e.g. 4, 8, 16), got {reduction!r}")
        if statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {list(STATISTICS)}, got {statistic!r}")
        self.channels, self.reduction, self.statistic = channels, reduction, statistic
        stat = channels * (2 if statistic == "mean_std" else 1)
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(stat, hidden)
        self.fc2 = nn.Linear(hidden, out_features)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] != self.channels:
            raise ValueError(f"hyper function expects {self.channels} channels in dimension 1, got {tuple(x.shape)}")
        return self.fc2(torch.relu(self.fc1(global_pool(x, self.statistic))))


@QUANTIZERS.register("dysign")
class DySign(PerChannelQuantizer):
    """x_b = sign(x - alpha(x)) with per-sample, per-channel thresholds alpha(x) from a hyper function.

    alpha(x) = h(x) in R^{N x C} (:class:`ChannelHyperFunction`, optionally bounded by tanh);
    q(x)_{n,c} = sign(x_{n,c} - alpha_{n,c}(x)) (sign(0) = +1);
    dq/dx = ApproxSign'(x - alpha) = max(0, 2 - 2|x - alpha|) on the direct path, and
    dq/dalpha_{n,c} = -sum_{h,w} ApproxSign'(x - alpha), which flows into the hyper function and, through
    the pooled statistics, back into x (unless ``detach_input``).

    Parameters: the hyper function's FC1 (C/r x C + C/r) and FC2 (C x C/r + C, zero-initialised).
    ``channels`` is the input channel count (a layer passes its in_channels).
    """

    name = "dysign"

    def __init__(self, channels: int | None = None, reduction: int = 16, statistic: str = "mean",
                 bound: str = "none", detach_input: bool = False) -> None:
        super().__init__(channels)
        if bound not in BOUNDS:
            raise ValueError(f"bound must be one of {list(BOUNDS)}, got {bound!r}")
        if not isinstance(reduction, int) or isinstance(reduction, bool) or reduction < 1:
            raise ValueError(f"reduction must be a positive int (e.g. 4, 8, 16), got {reduction!r}")
        if statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {list(STATISTICS)}, got {statistic!r}")
        self.reduction, self.statistic = reduction, statistic
        self.bound, self.detach_input = bound, bool(detach_input)
        self._finish_init()

    def build(self, channels: int, device=None) -> None:
        self.hyper = ChannelHyperFunction(channels, channels, self.reduction, self.statistic).to(device)

    def thresholds(self, x: torch.Tensor) -> torch.Tensor:
        """alpha(x), shape (N, C)."""
        self.materialize(x)
        alpha = self.hyper(x.detach() if self.detach_input else x)
        return torch.tanh(alpha) if self.bound == "tanh" else alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.thresholds(x)
        return approx_sign(x - alpha.reshape(*alpha.shape, *([1] * (x.dim() - 2))))

    def hparams(self) -> dict[str, Any]:
        return {"reduction": self.reduction, "statistic": self.statistic, "bound": self.bound,
                "detach_input": self.detach_input}
