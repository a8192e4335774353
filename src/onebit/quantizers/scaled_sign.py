"""BNN+ weights: alpha sign(w) with a trainable scale (Darabi, Belbahri, Courbariaux, Partovi Nia,
"BNN+: Improved Binary Network Training", arXiv 1812.11800, 2018).

No official code was released; granularity and initialisation are onebit's defaults from
methods.md 6.3 / 9.11 (per output filter, init mean |w|).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .base import PerChannelQuantizer, channel_view
from .registry import QUANTIZERS
from .sign import ste_sign

__all__ = ["ScaledSign"]

GRANULARITIES = ("channel", "layer")
INITS = ("mean_abs", "ones")


@QUANTIZERS.register("scaled_sign")
class ScaledSign(PerChannelQuantizer):
    """w_b = alpha sign(w) with a trainable scale alpha per output filter (default) or per layer.

    q(w) = alpha_o sign(w_o) (sign(0) = +1);
    dq/dw = alpha_o 1[|w| <= clip_value] (STE through sign; ``clip_value=None``: no clipping);
    dq/dalpha_o = sign(w_o), summed over the filter.
    alpha is also the target of the BNN+ regularizers (:mod:`onebit.regularizers`), which pull |w|
    toward it. ``init="mean_abs"`` sets alpha = mean |w| of each filter (the XNOR value) whenever the
    layer's weight is set; ``"ones"`` starts at 1. alpha is not constrained to be positive.
    ``channels`` is the output channel count (a layer passes its out_channels).
    """

    name = "scaled_sign"
    channel_dim = 0

    def __init__(self, channels: int | None = None, granularity: str = "channel", init: str = "mean_abs",
                 clip_value: float | None = 1.0) -> None:
        super().__init__(channels)
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {list(GRANULARITIES)}, got {granularity!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {list(INITS)}, got {init!r}")
        if clip_value is not None and not clip_value > 0:
            raise ValueError(f"clip_value must be > 0 or None, got {clip_value}")
        self.granularity, self.init, self.clip_value = granularity, init, clip_value
        self._finish_init()

    def build(self, channels: int, device=None) -> None:
        self.scale = nn.Parameter(torch.ones(channels if self.granularity == "channel" else (), device=device))

    def scale_like(self, w: torch.Tensor) -> torch.Tensor:
        """alpha, broadcastable against ``w`` (C_out, ...)."""
        self.materialize(w)
        if self.granularity == "layer":
            return self.scale
        return channel_view(self.scale, w, dim=0)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        clip = math.inf if self.clip_value is None else float(self.clip_value)
        return self.scale_like(w) * ste_sign(w, clip)

    @torch.no_grad()
    def init_from_weight(self, weight: torch.Tensor) -> None:
        self.materialize(weight)
        if self.init != "mean_abs":
            return
        if self.granularity == "layer":
            self.scale.copy_(weight.abs().mean())
        else:
            self.scale.copy_(weight.abs().reshape(weight.shape[0], -1).mean(dim=1))

    def hparams(self) -> dict[str, Any]:
        return {"granularity": self.granularity, "init": self.init, "clip_value": self.clip_value}
