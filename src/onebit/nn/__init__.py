"""Binary layers: the native torch layer plus one mixin (:class:`QuantizedLayerMixin`)."""

from .conv import BinaryConv2d
from .linear import BinaryLinear
from .quantized import QuantizedLayerMixin

__all__ = ["BinaryConv2d", "BinaryLinear", "QuantizedLayerMixin"]
