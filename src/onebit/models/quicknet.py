"""``quicknet``: a QuickNet-style binary ResNet (the larq zoo's QuickNetSmall layout).

Bannink, Hillier, Geiger, de Bruin, Overweel, Neeven, Helwegen, "Larq Compute Engine: Design, Benchmark,
and Deploy State-of-the-Art Binarized Neural Networks", MLSys 2021 (arXiv 2011.09398); larq/zoo
``sota/quicknet.py``. Float stem (3x3/2 conv -> BN -> ReLU -> depthwise 3x3/2 -> BN -> 1x1 conv -> BN),
four sections of binary 3x3 residual blocks (QuickNetSmall: widths 32-64-256-512, 4 blocks each), float
transitions between sections (ReLU -> max-pool 2/1 -> fixed blur-pool 3x3/2 -> 1x1 conv -> BN, Zhang,
"Making Convolutional Networks Shift-Invariant Again", ICML 2019), ReLU, global pooling and a float FC.

"QuickNet-style": the binary residual block is the method's unit (:class:`onebit.nn.BinaryConvUnit` with a
shortcut around the conv), not QuickNet's own conv -> ReLU -> BN (ste_sign clip 1.25, +1 padding), which
is no registered method. The float model uses QuickNet's order: conv -> ReLU -> BN, + x.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..binarize import BinarizeConfig
from ..nn import BinaryConvUnit
from ._apply import as_method, attach, block_spec, scaled
from .registry import register_model

__all__ = ["BlurPool2d", "QuickNet", "quicknet"]


class BlurPool2d(nn.Module):
    """Anti-aliased downsampling: a fixed depthwise [1, 2, 1]^T [1, 2, 1] / 16 filter with stride ``stride``
    and padding 1 (a buffer, not a parameter)."""

    def __init__(self, channels: int, stride: int = 2) -> None:
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        kernel = torch.outer(k, k) / 16
        self.register_buffer("kernel", kernel.expand(channels, 1, 3, 3).clone())
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel.to(x.dtype), stride=self.stride, padding=1, groups=x.shape[1])


class _FloatResidual(nn.Module):
    """QuickNet's residual block in float: x + BN(ReLU(conv3x3(x)))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.ReLU(),
                                  nn.BatchNorm2d(channels, momentum=0.1, eps=1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _stem(in_chans: int, width: int) -> nn.Sequential:
    mid = width // 4
    return nn.Sequential(
        nn.Conv2d(in_chans, mid, 3, 2, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
        nn.Conv2d(mid, mid, 3, 2, 1, groups=mid, bias=False), nn.BatchNorm2d(mid, affine=False),
        nn.Conv2d(mid, width, 1, bias=False), nn.BatchNorm2d(width))


def _transition(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), nn.MaxPool2d(2, 1), BlurPool2d(cin, 2), nn.Conv2d(cin, cout, 1, bias=False),
                         nn.BatchNorm2d(cout))


class QuickNet(nn.Module):
    """QuickNet: ``blocks[i]`` residual blocks of width ``widths[i]``, a transition before each width change."""

    def __init__(self, *, num_classes: int, in_chans: int, method: BinarizeConfig | None = None,
                 widths: Sequence[int] = (32, 64, 256, 512), blocks: Sequence[int] = (4, 4, 4, 4)) -> None:
        super().__init__()
        if len(widths) != len(blocks) or not widths or widths[0] % 4:
            raise ValueError(f"widths and blocks must have equal length and widths[0] % 4 == 0, got {widths}, {blocks}")
        spec = None if method is None else block_spec(as_method(method), shortcut="per_conv")
        self.stem = _stem(in_chans, widths[0])
        layers, cin = [], widths[0]
        for width, depth in zip(widths, blocks):
            if width != cin:
                layers.append(_transition(cin, width))
            layers += [_FloatResidual(width) if spec is None else BinaryConvUnit(width, width, 3, 1, spec=spec)
                       for _ in range(depth)]
            cin = width
        self.layers = nn.Sequential(*layers)
        self.head_act = nn.ReLU()  # QuickNet's own head ReLU (so Si-BNN's head_relu is there already)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        if method is not None:
            attach(self, method, float_layers=("stem.0", "fc"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head_act(self.layers(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_model("quicknet", layout="imagenet", input_size=(3, 224, 224), block_based=True,
                paper="Bannink et al., 'Larq Compute Engine', MLSys 2021 (arXiv 2011.09398); larq zoo QuickNetSmall")
def quicknet(*, num_classes: int = 1000, in_chans: int = 3, method: BinarizeConfig | None = None,
             width_mult: float = 1.0) -> QuickNet:
    """QuickNet-style small variant. larq zoo publishes 12,655,688 parameters for QuickNetSmall (Keras
    count, QuickNet's own block); that count is not reproduced here (the unit is the method's and the
    graph differs in details), so it is not tested. The float model here has 12,652,504 torch parameters
    for 1000 classes (the blur-pool filters are buffers). ``width_mult`` scales the widths (base 32,
    rounded to a multiple of 4)."""
    base = scaled(32, width_mult, multiple=4)
    return QuickNet(num_classes=num_classes, in_chans=in_chans, method=method,
                    widths=(base, 2 * base, 8 * base, 16 * base))
