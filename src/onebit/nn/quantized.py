"""The one mixin that turns a torch layer into a quantized (binary) layer."""

from __future__ import annotations

import torch

from .. import quantizers
from ..quantizers import Quantizer, QuantizerSpec

__all__ = ["QuantizedLayerMixin"]


class QuantizedLayerMixin:
    """Quantize the input and the weight, then run the unchanged torch op.

    Mixed into ``nn.Conv2d`` / ``nn.Linear``: the torch layer keeps every argument and its own
    forward arithmetic; the mixin only supplies ``quantized_input`` and ``quantized_weight``.
    With both quantizers ``None`` the layer computes exactly what the torch layer computes.

    Layers run in ``"fake"`` mode (float ops on binarized values, for training); the packed
    runtime mode (bitwise kernels) is reported by ``mode`` once a layer is packed.
    """

    input_quantizer: Quantizer | None
    weight_quantizer: Quantizer | None

    def _init_quantizers(self, input_quantizer: QuantizerSpec, weight_quantizer: QuantizerSpec) -> None:
        self.input_quantizer = quantizers.get(input_quantizer)
        self.weight_quantizer = quantizers.get(weight_quantizer)

    def quantized_input(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.input_quantizer is None else self.input_quantizer(x)

    def quantized_weight(self) -> torch.Tensor:
        w = self.weight  # type: ignore[attr-defined]
        return w if self.weight_quantizer is None else self.weight_quantizer(w)

    @property
    def mode(self) -> str:
        """``"fake"``: float ops on binarized tensors (training); ``"packed"``: bitwise kernels."""
        return "fake"

    @property
    def input_precision(self) -> int:
        return 32 if self.input_quantizer is None else self.input_quantizer.precision

    @property
    def weight_precision(self) -> int:
        return 32 if self.weight_quantizer is None else self.weight_quantizer.precision
