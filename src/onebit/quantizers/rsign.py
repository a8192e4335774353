"""RSign: sign with a learnable per-channel threshold (ReActNet, Liu et al., ECCV 2020, arXiv 2003.03488)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import PerChannelQuantizer, channel_view
from .registry import QUANTIZERS
from .sign import approx_sign

__all__ = ["RSign"]


@QUANTIZERS.register("rsign")
class RSign(PerChannelQuantizer):
    """x_b = sign(x - alpha_c) with a learnable threshold alpha_c per channel (init 0).

    q(x) = sign(x - alpha_c) (sign(0) = +1, so x = alpha_c gives +1);
    dq/dx = ApproxSign'(x - alpha_c) = max(0, 2 - 2|x - alpha_c|);
    dq/dalpha_c = -ApproxSign'(x - alpha_c), summed over every position of channel c.

    The authors' code stores the threshold as an added bias b_c = -alpha_c ("LearnableBias"); onebit
    stores alpha_c itself (``threshold``, shape (C,)), which is the same function. ``channels`` is the
    channel count of the input (dimension 1); a layer passes its ``in_channels``.
    """

    name = "rsign"

    def __init__(self, channels: int | None = None, init: float = 0.0) -> None:
        super().__init__(channels)
        self.init = float(init)
        self._finish_init()

    def build(self, channels: int, device=None) -> None:
        self.threshold = nn.Parameter(torch.full((channels,), self.init, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.materialize(x)
        return approx_sign(x - channel_view(self.threshold, x))

    def hparams(self) -> dict[str, Any]:
        return {"init": self.init}
