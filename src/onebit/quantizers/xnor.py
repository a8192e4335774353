"""XNOR-Net weight binarizer: per-output-channel scaled sign (Rastegari et al., ECCV 2016)."""

from __future__ import annotations

from typing import Any

import torch

from .base import Quantizer, sign
from .registry import QUANTIZERS

__all__ = ["XnorWeight", "xnor_weight"]


def _channel_dims(w: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(1, w.dim()))


class _XnorWeightFunction(torch.autograd.Function):
    """w_b = alpha_o sign(w), alpha_o = mean_i |w_{o,i}| over the n = C_in kh kw weights of filter o.

    Backward (the magnitude-aware gradient of the XNOR-Net reference code, without its artefacts):
        dL/dw_{o,i} = alpha_o g_{o,i} 1[|w_{o,i}| <= clip] + sign(w_{o,i}) / n * sum_j sign(w_{o,j}) g_{o,j}
    The second term is the exact derivative through alpha_o (d alpha_o / d w_{o,i} = sign(w_{o,i}) / n);
    the first is the STE through sign. With ``detach_scale`` only the first term remains.
    """

    @staticmethod
    def forward(ctx, w: torch.Tensor, clip_value: float, detach_scale: bool) -> torch.Tensor:
        dims = _channel_dims(w)
        alpha = w.abs().mean(dim=dims, keepdim=True)
        ctx.save_for_backward(w, alpha)
        ctx.clip_value, ctx.detach_scale = clip_value, detach_scale
        return alpha * sign(w)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        w, alpha = ctx.saved_tensors
        s = sign(w)
        grad = alpha * g * (w.abs() <= ctx.clip_value).to(g.dtype)
        if not ctx.detach_scale:
            dims = _channel_dims(w)
            n = w[0].numel()
            grad = grad + s / n * (s * g).sum(dim=dims, keepdim=True)
        return grad, None, None


def xnor_weight(w: torch.Tensor, clip_value: float = 1.0, detach_scale: bool = False) -> torch.Tensor:
    if w.dim() < 2:
        raise ValueError(f"xnor_weight needs a weight with an output-channel dimension, got shape {tuple(w.shape)}")
    return _XnorWeightFunction.apply(w, clip_value, detach_scale)


@QUANTIZERS.register("xnor_weight")
class XnorWeight(Quantizer):
    """Binarize weights to {-alpha_o, +alpha_o} per output channel, alpha_o = mean |w_o| (XNOR-Net).

    q(w)_o = alpha_o sign(w_o). Pseudo-gradient: see :class:`_XnorWeightFunction`; ``detach_scale=True``
    gives the Bi-Real/ReActNet PyTorch variant (alpha treated as a constant, STE clipped at 1).
    """

    name = "xnor_weight"

    def __init__(self, clip_value: float = 1.0, detach_scale: bool = False) -> None:
        super().__init__()
        if not clip_value > 0:
            raise ValueError(f"clip_value must be > 0, got {clip_value}")
        self.clip_value = float(clip_value)
        self.detach_scale = bool(detach_scale)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return xnor_weight(w, self.clip_value, self.detach_scale)

    def hparams(self) -> dict[str, Any]:
        return {"clip_value": self.clip_value, "detach_scale": self.detach_scale}
