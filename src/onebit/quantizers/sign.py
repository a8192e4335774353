"""Sign quantizers for +-1 activations and weights: STE, ApproxSign (Bi-Real), SignSwish (BNN+).

All share the forward q(x) = sign(x) with sign(0) = +1 and differ in the pseudo-gradient used
in the backward pass. Backward functions are pure: they never modify ``grad_output``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .base import Quantizer, sign
from .registry import QUANTIZERS

__all__ = ["ApproxSign", "SteSign", "SwishSign", "approx_sign", "ste_sign", "swish_sign"]


class _SteSignFunction(torch.autograd.Function):
    """q(x) = sign(x);  dq/dx = 1 if |x| <= clip else 0  (straight-through estimator with clipping)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, clip_value: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.clip_value = clip_value
        return sign(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (x,) = ctx.saved_tensors
        if math.isinf(ctx.clip_value):
            return grad_output, None
        return grad_output * (x.abs() <= ctx.clip_value).to(grad_output.dtype), None


class _ApproxSignFunction(torch.autograd.Function):
    """q(x) = sign(x);  dq/dx = 2 - 2|x| for |x| <= 1, else 0  (Bi-Real piecewise polynomial)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return sign(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad_output * torch.clamp(2.0 - 2.0 * x.abs(), min=0.0).to(grad_output.dtype)


class _SwishSignFunction(torch.autograd.Function):
    """q(x) = sign(x);  dq/dx = beta (2 - beta x tanh(beta x / 2)) / (1 + cosh(beta x))  (BNN+ SignSwish).

    This is the derivative of SS_beta(x) = 2 sigmoid(beta x)(1 + beta x (1 - sigmoid(beta x))) - 1.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, beta: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.beta = beta
        return sign(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad_output * swish_sign_grad(x, ctx.beta).to(grad_output.dtype), None


def swish_sign_grad(x: torch.Tensor, beta: float) -> torch.Tensor:
    """d SS_beta(x) / dx; cosh overflows to inf for large |beta x|, where the gradient is 0 anyway."""
    bx = beta * x
    return beta * (2.0 - bx * torch.tanh(bx / 2.0)) / (1.0 + torch.cosh(bx))


def ste_sign(x: torch.Tensor, clip_value: float = 1.0) -> torch.Tensor:
    return _SteSignFunction.apply(x, clip_value)


def approx_sign(x: torch.Tensor) -> torch.Tensor:
    return _ApproxSignFunction.apply(x)


def swish_sign(x: torch.Tensor, beta: float = 5.0) -> torch.Tensor:
    return _SwishSignFunction.apply(x, beta)


@QUANTIZERS.register("ste_sign")
class SteSign(Quantizer):
    """Sign with the straight-through estimator (BNN, Courbariaux/Hubara et al. 2016).

    q(x) = sign(x) (sign(0) = +1);  dq/dx = 1 where |x| <= clip_value, else 0.
    ``clip_value=None`` passes the gradient everywhere.
    """

    name = "ste_sign"

    def __init__(self, clip_value: float | None = 1.0) -> None:
        super().__init__()
        if clip_value is not None and not clip_value > 0:
            raise ValueError(f"clip_value must be > 0 or None, got {clip_value}")
        self.clip_value = clip_value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ste_sign(x, math.inf if self.clip_value is None else float(self.clip_value))

    def hparams(self) -> dict[str, Any]:
        return {"clip_value": self.clip_value}


@QUANTIZERS.register("approx_sign")
class ApproxSign(Quantizer):
    """Sign with Bi-Real Net's ApproxSign gradient (Liu et al., ECCV 2018).

    q(x) = sign(x);  dq/dx = 2 + 2x on [-1, 0), 2 - 2x on [0, 1], 0 elsewhere (= max(0, 2 - 2|x|)).
    """

    name = "approx_sign"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return approx_sign(x)


@QUANTIZERS.register("swish_sign")
class SwishSign(Quantizer):
    """Sign with the SignSwish gradient of BNN+ (Darabi et al., 2018).

    q(x) = sign(x);  dq/dx = beta (2 - beta x tanh(beta x / 2)) / (1 + cosh(beta x)).
    Larger beta approaches the derivative of sign; the peak at x = 0 is beta, with small negative
    lobes beyond |x| ~ 2.4 / beta.
    """

    name = "swish_sign"

    def __init__(self, beta: float = 5.0) -> None:
        super().__init__()
        if not beta > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.beta = float(beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return swish_sign(x, self.beta)

    def hparams(self) -> dict[str, Any]:
        return {"beta": self.beta}
