"""BinaryLinear: ``nn.Linear`` plus the quantizer mixin."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..quantizers import QuantizerSpec
from .quantized import QuantizedLayerMixin

__all__ = ["BinaryLinear"]


class BinaryLinear(QuantizedLayerMixin, nn.Linear):
    """Fully connected layer on quantized inputs and weights: y = q_in(x) q_w(W)^T + b."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        input_quantizer: QuantizerSpec = "ste_sign",
        weight_quantizer: QuantizerSpec = "ste_sign",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self._init_quantizers(input_quantizer, weight_quantizer)

    @classmethod
    def from_float(cls, linear: nn.Linear, **kwargs) -> "BinaryLinear":
        """A BinaryLinear with ``linear``'s shape, device, dtype and parameters (kwargs: quantizers)."""
        kwargs.pop("pad_value", None)  # meaningless for a dense layer
        layer = cls(
            linear.in_features, linear.out_features, linear.bias is not None,
            device=linear.weight.device, dtype=linear.weight.dtype, **kwargs,
        )
        layer.load_float_state_dict(linear.state_dict())
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.quantized_input(x), self.quantized_weight(), self.bias)

