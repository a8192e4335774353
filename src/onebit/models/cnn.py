"""``cnn28``: a compact CNN for 28x28 single-channel images (Fashion-MNIST), the default BNN of the demo.

The layer order is BNN's (Courbariaux et al., arXiv 1602.02830): conv -> BatchNorm -> max-pool ->
Hardtanh, where the next binary layer's input quantizer takes the sign. BatchNorm sits before the pool
so that, at inference, BN + sign fold into one threshold and the pool runs on bits (max of signs = sign of
the max, also for a negative BN scale). The float stem pools first (its output is float either way, and
BatchNorm on the pooled map is 4x cheaper).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..binarize import BinarizeConfig, binarize_
from ._apply import activation
from .registry import register_model

__all__ = ["cnn28"]


def _conv_stage(cin: int, cout: int, pool: nn.Module, binary: bool, *, pool_first: bool = False) -> nn.Sequential:
    conv, norm = nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout)
    return nn.Sequential(conv, *((pool, norm) if pool_first else (norm, pool)), activation(binary))


@register_model("cnn28", layout="28x28", input_size=(1, 28, 28), small_size=28, block_based=False,
                paper="onebit's own compact BNN (layer order of Courbariaux et al., arXiv 1602.02830)")
def cnn28(*, num_classes: int = 10, in_chans: int = 1, method: BinarizeConfig | None = None,
          width: int = 32) -> nn.Module:
    """Float stem (3x3, ``width``) -> pool; binary 3x3 convs ``2 width`` and ``4 width`` (28 -> 14 -> 7 -> 3x3
    by adaptive max pooling); binary FC ``8 width``; float classifier.

    With ``width=32``: 358,474 float parameters for 10 classes and 1 input channel (onebit's design, no
    published count); 7.7 M MACs per 28x28 image, of which 97 % binary once binarized.
    """
    w, binary = width, method is not None
    model = nn.Sequential(OrderedDict(
        stem=_conv_stage(in_chans, w, nn.MaxPool2d(2), binary, pool_first=True),
        stage1=_conv_stage(w, 2 * w, nn.MaxPool2d(2), binary),
        stage2=_conv_stage(2 * w, 4 * w, nn.AdaptiveMaxPool2d(3), binary),
        flatten=nn.Flatten(),
        fc1=nn.Sequential(nn.Linear(4 * w * 9, 8 * w, bias=False), nn.BatchNorm1d(8 * w), activation(binary)),
        fc=nn.Linear(8 * w, num_classes),
    ))
    return model if method is None else binarize_(model, method)
