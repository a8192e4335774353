"""Binary layers: the native torch layer plus one mixin (:class:`QuantizedLayerMixin`), and the
method building blocks (RPReLU, DyPReLU, Elastic-Link, binary blocks)."""

from .conv import BinaryConv2d
from .linear import BinaryLinear
from .quantized import QuantizedLayerMixin
from .rprelu import LearnableBias, RPReLU
from .dynamic import DyPReLU
from .elastic_link import ElasticLink
from .blocks import (
    BinaryBasicBlock, BinaryBottleneckBlock, BinaryConvUnit, BlockSpec, ReActNetBlock, make_activation, make_shortcut,
)

__all__ = [
    "BinaryBasicBlock",
    "BinaryBottleneckBlock",
    "BinaryConv2d",
    "BinaryConvUnit",
    "BinaryLinear",
    "BlockSpec",
    "DyPReLU",
    "ElasticLink",
    "LearnableBias",
    "QuantizedLayerMixin",
    "RPReLU",
    "ReActNetBlock",
    "make_activation",
    "make_shortcut",
]
