"""SignSwish with a trainable or scheduled beta (BNN+, Darabi et al., arXiv 1812.11800).

The fixed-beta quantizer is ``swish_sign`` (:mod:`onebit.quantizers.sign`); this module adds a
trainable beta and helpers to schedule beta during training.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .base import Quantizer, sign
from .registry import QUANTIZERS
from .sign import SwishSign, swish_sign_grad

__all__ = ["LearnableSwishSign", "beta_schedule", "set_swish_beta_"]

SCHEDULES = ("linear", "exp", "constant")
#: beta is clamped to at least this value in the backward pass (beta <= 0 would flip or kill the gradient)
MIN_BETA = 1e-3


class _LearnableSwishSignFunction(torch.autograd.Function):
    """q(x) = sign(x);  dq/dx = dSS_beta/dx = beta (2 - beta x tanh(beta x/2)) / (1 + cosh(beta x)).

    beta only shapes the backward pass, so it gets the gradient of the surrogate SS_beta(x) the backward
    pass stands for: SS_beta(x) = f(beta x) gives dSS/dbeta = x f'(beta x) = (x / beta) dSS/dx, and
    dL/dbeta = sum g (x / beta) dSS_beta/dx (onebit's choice; the paper's form is not known).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, beta)
        return sign(x)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x, beta = ctx.saved_tensors
        b = beta.clamp(min=MIN_BETA)
        d = swish_sign_grad(x, b).to(g.dtype)
        gx = g * d
        gbeta = (g * d * x / b).sum().reshape(beta.shape) if ctx.needs_input_grad[1] else None
        return gx, gbeta


@QUANTIZERS.register("learnable_swish_sign")
class LearnableSwishSign(Quantizer):
    """Sign with the SignSwish gradient and a trainable beta (one scalar per quantizer, init ``beta``).

    q(x) = sign(x);  dq/dx = beta (2 - beta x tanh(beta x / 2)) / (1 + cosh(beta x));
    dq/dbeta = (x / beta) dq/dx (see :class:`_LearnableSwishSignFunction`).
    """

    name = "learnable_swish_sign"

    def __init__(self, beta: float = 5.0) -> None:
        super().__init__()
        if not beta > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.init_beta = float(beta)
        self.beta = nn.Parameter(torch.tensor(self.init_beta))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _LearnableSwishSignFunction.apply(x, self.beta)

    def hparams(self) -> dict[str, Any]:
        return {"beta": self.init_beta}


def beta_schedule(step: int, total: int, start: float = 1.0, end: float = 5.0, kind: str = "linear") -> float:
    """beta at ``step`` of ``total``: linear or exponential (geometric) from ``start`` to ``end``."""
    if kind not in SCHEDULES:
        raise ValueError(f"kind must be one of {list(SCHEDULES)}, got {kind!r}")
    if not (start > 0 and end > 0):
        raise ValueError(f"beta must stay > 0, got start={start}, end={end}")
    if total < 1 or not 0 <= step <= total:
        raise ValueError(f"need total >= 1 and 0 <= step <= total, got step={step}, total={total}")
    frac = step / total
    if kind == "constant":
        return float(start)
    if kind == "linear":
        return start + (end - start) * frac
    return math.exp(math.log(start) + (math.log(end) - math.log(start)) * frac)


@torch.no_grad()
def set_swish_beta_(model: nn.Module, beta: float) -> int:
    """Set beta on every SignSwish quantizer (fixed or trainable) in ``model``; returns how many."""
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    count = 0
    for module in model.modules():
        if isinstance(module, SwishSign):
            module.beta = float(beta)
            count += 1
        elif isinstance(module, LearnableSwishSign):
            module.beta.fill_(beta)
            count += 1
    return count
