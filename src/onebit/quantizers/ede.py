"""EDE: sign with IR-Net's Error Decay Estimator (Qin et al., "Forward and Backward Information
Retention for Accurate Binary Neural Networks", CVPR 2020). SBNN's CIFAR-10 code uses it for weights
and activations."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .base import Quantizer, sign
from .registry import QUANTIZERS

__all__ = ["EdeSign", "ede_grad", "ede_sign", "ede_t", "set_ede_t_"]


def ede_grad(x: torch.Tensor, t: float) -> torch.Tensor:
    """k t (1 - tanh^2(t x)) with k = max(1, 1/t)."""
    k = max(1.0, 1.0 / t)
    return k * t * (1.0 - torch.tanh(t * x) ** 2)


class _EdeSignFunction(torch.autograd.Function):
    """q(x) = sign(x);  dq/dx = k t (1 - tanh^2(t x)), k = max(1, 1/t)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, t: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.t = t
        return sign(x)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (x,) = ctx.saved_tensors
        return g * ede_grad(x, ctx.t).to(g.dtype), None


def ede_sign(x: torch.Tensor, t: float = 1.0) -> torch.Tensor:
    return _EdeSignFunction.apply(x, t)


def ede_t(epoch: int, epochs: int, t_min: float = 0.1, t_max: float = 10.0) -> float:
    """IR-Net's schedule t = 10^(log10 t_min + (log10 t_max - log10 t_min) epoch / epochs).

    (t_min, t_max) = (0.1, 10) for ResNet-18 / VGG-Small, (1e-3, 10) for ResNet-20.
    """
    if not 0 < t_min <= t_max:
        raise ValueError(f"need 0 < t_min <= t_max, got ({t_min}, {t_max})")
    if epochs < 1 or not 0 <= epoch <= epochs:
        raise ValueError(f"need epochs >= 1 and 0 <= epoch <= epochs, got epoch={epoch}, epochs={epochs}")
    lo, hi = math.log10(t_min), math.log10(t_max)
    return 10.0 ** (lo + (hi - lo) * epoch / epochs)


def set_ede_t_(model: nn.Module, t: float) -> int:
    """Set ``t`` on every EDE quantizer in ``model`` (including SBNN weights with ``ste="ede"``); returns how many."""
    if not t > 0:
        raise ValueError(f"t must be > 0, got {t}")
    count = 0
    for module in model.modules():
        if isinstance(module, Quantizer) and getattr(module, "uses_ede", False):
            module.t = float(t)
            count += 1
    return count


@QUANTIZERS.register("ede_sign")
class EdeSign(Quantizer):
    """Sign with the EDE pseudo-gradient (IR-Net).

    q(x) = sign(x) (sign(0) = +1);  dq/dx = k t (1 - tanh^2(t x)), k = max(1, 1/t).
    Small t: a wide, flat gradient (k t = 1 at t <= 1); large t: close to the derivative of sign.
    ``t`` is set during training by :func:`set_ede_t_` following :func:`ede_t`.
    """

    name = "ede_sign"
    uses_ede = True

    def __init__(self, t: float = 1.0) -> None:
        super().__init__()
        if not t > 0:
            raise ValueError(f"t must be > 0, got {t}")
        self.t = float(t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ede_sign(x, self.t)

    def hparams(self) -> dict[str, Any]:
        return {"t": self.t}
