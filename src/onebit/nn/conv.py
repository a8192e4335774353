"""BinaryConv2d: ``nn.Conv2d`` plus the quantizer mixin."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..quantizers import QuantizerSpec
from .quantized import QuantizedLayerMixin

__all__ = ["BinaryConv2d"]


class BinaryConv2d(QuantizedLayerMixin, nn.Conv2d):
    """2-D convolution of quantized inputs with quantized weights.

    y = conv2d(pad(q_in(x), pad_value), q_w(W)) + b, with every ``nn.Conv2d`` argument (stride,
    padding, dilation, groups, bias) applied by torch itself.

    ``pad_value`` is the value spatial padding takes *after* input quantization. 0.0 (torch's zero
    padding) is exact for {0,1} activations but is a third value for +-1 activations; ``pad_value=1.0``
    pads with +1, which is a plain bit (0) in the packed runtime. Only ``padding_mode="zeros"``
    combines with a non-zero ``pad_value``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        *,
        input_quantizer: QuantizerSpec = "ste_sign",
        weight_quantizer: QuantizerSpec = "ste_sign",
        pad_value: float = 0.0,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode=padding_mode, device=device, dtype=dtype,
        )
        if pad_value != 0.0 and padding_mode != "zeros":
            raise ValueError(f"pad_value={pad_value} needs padding_mode='zeros', got {padding_mode!r}")
        self.pad_value = float(pad_value)
        self._init_quantizers(input_quantizer, weight_quantizer)

    @classmethod
    def from_float(cls, conv: nn.Conv2d, **kwargs) -> "BinaryConv2d":
        """A BinaryConv2d with ``conv``'s arguments, device, dtype and parameters (kwargs: quantizers, pad_value)."""
        layer = cls(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
            conv.dilation, conv.groups, conv.bias is not None, padding_mode=conv.padding_mode,
            device=conv.weight.device, dtype=conv.weight.dtype, **kwargs,
        )
        layer.load_float_state_dict(conv.state_dict())
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq = self.quantized_input(x)
        wq = self.quantized_weight()
        if self.pad_value != 0.0 and any(self._reversed_padding_repeated_twice):
            # _reversed_padding_repeated_twice is torch's own (left, right, top, bottom) amounts,
            # also for padding="same"; pad explicitly, then convolve without padding.
            xq = F.pad(xq, self._reversed_padding_repeated_twice, mode="constant", value=self.pad_value)
            return F.conv2d(xq, wq, self.bias, self.stride, 0, self.dilation, self.groups)
        return self._conv_forward(xq, wq, self.bias)

    def extra_repr(self) -> str:
        extra = [super().extra_repr()]
        if self.pad_value != 0.0:
            extra.append(f"pad_value={self.pad_value}")
        return ", ".join(e for e in extra if e)
