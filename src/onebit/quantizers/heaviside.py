"""{0,1} quantizer: the Heaviside step with a straight-through gradient."""

from __future__ import annotations

import math
from typing import Any

import torch

from .base import Quantizer
from .registry import QUANTIZERS

__all__ = ["SteHeaviside", "ste_heaviside"]


class _SteHeavisideFunction(torch.autograd.Function):
    """q(x) = H(x) = 1 if x > 0 else 0;  dq/dx = 1 if |x| <= clip else 0."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, clip_value: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.clip_value = clip_value
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (x,) = ctx.saved_tensors
        if math.isinf(ctx.clip_value):
            return grad_output, None
        return grad_output * (x.abs() <= ctx.clip_value).to(grad_output.dtype), None


def ste_heaviside(x: torch.Tensor, clip_value: float = 1.0) -> torch.Tensor:
    return _SteHeavisideFunction.apply(x, clip_value)


@QUANTIZERS.register("ste_heaviside")
class SteHeaviside(Quantizer):
    """Binarize to {0, 1} with a straight-through gradient (a 1-bit ReLU; larq's SteHeaviside).

    q(x) = 1 if x > 0 else 0 (so q(0) = 0);  dq/dx = 1 where |x| <= clip_value, else 0.
    Si-BNN's variant with trainable backward thresholds builds on this domain.
    """

    name = "ste_heaviside"
    domain = "01"

    def __init__(self, clip_value: float | None = 1.0) -> None:
        super().__init__()
        if clip_value is not None and not clip_value > 0:
            raise ValueError(f"clip_value must be > 0 or None, got {clip_value}")
        self.clip_value = clip_value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ste_heaviside(x, math.inf if self.clip_value is None else float(self.clip_value))

    def hparams(self) -> dict[str, Any]:
        return {"clip_value": self.clip_value}
