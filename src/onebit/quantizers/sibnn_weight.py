"""Si-BNN weight binarizer: XNOR-Net scaling with the authors' weight-gradient rule.

Wang, He, Cheng, IEEE TNNLS 2022 (doi 10.1109/TNNLS.2022.3173498), code peiswang/SiBNN (``util.py``,
derived from XNOR-Net-PyTorch).
"""

from __future__ import annotations

from typing import Any

import torch

from .base import Quantizer, sign
from .registry import QUANTIZERS

__all__ = ["SiBnnWeight", "sibnn_weight"]

GRADIENTS = ("code", "autograd")


def _filter_dims(w: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(1, w.dim()))


class _SiBnnWeightFunction(torch.autograd.Function):
    """w_b = alpha_o sign(w_c), w_c = clamp(w, -1, 1), alpha_o = mean_i |w_c[o, i]| over the n weights of filter o.

    Backward, ``gradient="code"`` (the released code, which clamps the latent weights in place first,
    so its |w| <= 1 mask is vacuous):
        dL/dw = (1 - 1/n) g + sign(w) mean_o(sign(w) g)
    ``gradient="autograd"`` (the exact derivative of alpha_o(w) sign(w) with an STE through sign):
        dL/dw = alpha_o g + sign(w) mean_o(sign(w) g)
    where mean_o averages over the n weights of filter o.
    """

    @staticmethod
    def forward(ctx, w: torch.Tensor, gradient: str) -> torch.Tensor:
        s = sign(w)
        alpha = w.clamp(-1.0, 1.0).abs().mean(dim=_filter_dims(w), keepdim=True)
        ctx.save_for_backward(s, alpha)
        ctx.gradient = gradient
        return alpha * s

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        s, alpha = ctx.saved_tensors
        n = s[0].numel()
        through_scale = s * (s * g).mean(dim=_filter_dims(s), keepdim=True)
        first = (1.0 - 1.0 / n) * g if ctx.gradient == "code" else alpha * g
        return first + through_scale, None


def sibnn_weight(w: torch.Tensor, gradient: str = "code") -> torch.Tensor:
    if w.dim() < 2:
        raise ValueError(f"sibnn_weight needs a weight with an output-channel dimension, got shape {tuple(w.shape)}")
    return _SiBnnWeightFunction.apply(w, gradient)


@QUANTIZERS.register("sibnn_weight")
class SiBnnWeight(Quantizer):
    """Binarize weights to {-alpha_o, +alpha_o}, alpha_o = mean |clamp(w_o, -1, 1)| (Si-BNN, XNOR scaling).

    q(w)_o = alpha_o sign(w_o). Pseudo-gradient (see :class:`_SiBnnWeightFunction`):
    ``gradient="code"`` (default, the authors' rule) dL/dw = (1 - 1/n) g + sign(w) mean_o(sign(w) g);
    ``gradient="autograd"`` dL/dw = alpha_o g + sign(w) mean_o(sign(w) g).
    The authors clamp the latent weights to [-1, 1] in place before every forward; onebit uses the
    clamped weights for alpha and leaves the in-place clamp to the method's ``latent_clip`` (applied
    after every optimizer step), which gives the same values.
    """

    name = "sibnn_weight"

    def __init__(self, gradient: str = "code") -> None:
        super().__init__()
        if gradient not in GRADIENTS:
            raise ValueError(f"gradient must be one of {list(GRADIENTS)}, got {gradient!r}")
        self.gradient = gradient

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return sibnn_weight(w, self.gradient)

    def hparams(self) -> dict[str, Any]:
        return {"gradient": self.gradient}
