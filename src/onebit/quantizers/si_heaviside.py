"""Si-BNN activations: {0, 1} with trainable thresholds in the backward function.

Wang, He, Cheng, "Toward Accurate Binarized Neural Networks With Sparsity for Mobile Application",
IEEE TNNLS 2022 (doi 10.1109/TNNLS.2022.3173498); extends "Sparsity-Inducing Binarized Neural
Networks", AAAI 2020. Reproduces the authors' code (peiswang/SiBNN): a per-channel (s, b) pair and a
fixed pass-band (-0.3, 1.0) on u = s (x - b).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import PerChannelQuantizer, channel_view
from .registry import QUANTIZERS

__all__ = ["SiHeaviside", "si_heaviside"]

#: the authors' pass-band edges on u = s (x - b)
LOWER, UPPER = -0.3, 1.0


def _reduce_to_channels(t: torch.Tensor) -> torch.Tensor:
    """Sum over every dimension except 1 (the channel dimension): (N, C, ...) -> (C,)."""
    dims = [d for d in range(t.dim()) if d != 1]
    return t.sum(dim=dims)


class _SiHeavisideFunction(torch.autograd.Function):
    """a = H(u), u = s_c (x - b_c), H(u) = 1 if u > 0 else 0; pass-band 1_win = 1[lower < u < upper].

    Backward (chain rule through u with dH/du := 1_win):
        dL/dx   = g 1_win s_c
        dL/ds_c = sum_{n,h,w} g 1_win (x - b_c)
        dL/db_c = -sum_{n,h,w} g 1_win s_c
    """

    @staticmethod
    def forward(ctx, x, s, b, lower: float, upper: float):
        sv, bv = channel_view(s, x), channel_view(b, x)
        u = sv * (x - bv)
        ctx.save_for_backward(x, s, b, u)
        ctx.lower, ctx.upper = lower, upper
        return (u > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        x, s, b, u = ctx.saved_tensors
        gw = g * ((u > ctx.lower) & (u < ctx.upper)).to(g.dtype)
        sv, bv = channel_view(s, x), channel_view(b, x)
        gx = gw * sv if ctx.needs_input_grad[0] else None
        gs = _reduce_to_channels(gw * (x - bv)) if ctx.needs_input_grad[1] else None
        gb = -_reduce_to_channels(gw * sv) if ctx.needs_input_grad[2] else None
        return gx, gs, gb, None, None


def si_heaviside(x: torch.Tensor, s: torch.Tensor, b: torch.Tensor,
                 lower: float = LOWER, upper: float = UPPER) -> torch.Tensor:
    """Functional form of :class:`SiHeaviside`; ``s`` and ``b`` have shape (C,), x is (N, C, ...)."""
    return _SiHeavisideFunction.apply(x, s, b, lower, upper)


@QUANTIZERS.register("si_heaviside")
class SiHeaviside(PerChannelQuantizer):
    """Binarize to {0, 1}: a = H(s_c (x - b_c)), with a trainable backward window (Si-BNN).

    q(x) = 1 if s_c (x - b_c) > 0 else 0 (so q = 0 exactly at the threshold; the authors' code gives
    0.5 there, onebit keeps the {0,1} domain);
    dq/dx = s_c where lower < s_c (x - b_c) < upper, else 0 (dq/ds_c, dq/db_c: see the Function).

    For s_c > 0 the forward threshold is b_c and s_c only shapes the gradient: in x-units the window is
    (b_c + lower / s_c, b_c + upper / s_c) and the gradient is scaled by s_c. Parameters (per channel,
    shape (C,)): ``scale`` s (init 1), ``bias`` b (init 0); the authors train them with weight decay 0.

    ``positive_scale=True`` (an onebit option, not the paper) parametrizes s = softplus(raw) so the
    forward comparison can never flip; the default keeps s unconstrained, as the authors' code does.
    """

    name = "si_heaviside"
    domain = "01"

    def __init__(self, channels: int | None = None, lower: float = LOWER, upper: float = UPPER,
                 positive_scale: bool = False) -> None:
        super().__init__(channels)
        lower, upper = float(lower), float(upper)
        if not (math.isfinite(lower) and math.isfinite(upper) and lower <= 0.0 < upper):
            raise ValueError(f"the backward window needs finite lower <= 0 < upper, got ({lower}, {upper})")
        self.lower, self.upper = lower, upper
        self.positive_scale = bool(positive_scale)
        self._finish_init()

    def build(self, channels: int, device=None) -> None:
        raw = math.log(math.expm1(1.0)) if self.positive_scale else 1.0  # so that s = 1 at init
        self.raw_scale = nn.Parameter(torch.full((channels,), raw, device=device))
        self.bias = nn.Parameter(torch.zeros(channels, device=device))

    @property
    def scale(self) -> torch.Tensor:
        """s_c, shape (C,)."""
        return F.softplus(self.raw_scale) if self.positive_scale else self.raw_scale

    def window(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The pass-band edges in x-units, (b + lower / s, b + upper / s) per channel (for s > 0)."""
        s = self.scale.detach()
        return self.bias.detach() + self.lower / s, self.bias.detach() + self.upper / s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.materialize(x)
        return si_heaviside(x, self.scale, self.bias, self.lower, self.upper)

    def hparams(self) -> dict[str, Any]:
        return {"lower": self.lower, "upper": self.upper, "positive_scale": self.positive_scale}
