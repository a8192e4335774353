"""``vgg_small``: the CIFAR-10 VGG-Small of the LQ-Nets and XNOR-Net-era BNN papers.

Zhang, Yang, Ye, Hua, "LQ-Nets: Learned Quantization for Highly Accurate and Compact Deep Neural
Networks", ECCV 2018 (arXiv 1807.10029) — the VGG-Small used since by IR-Net, RBNN, ReCU and others:
six 3x3 convs 128-128-256-256-512-512 with a 2x2 max-pool after every second one, and one FC classifier.
BNN order (Courbariaux et al., arXiv 1602.02830): conv -> BatchNorm -> pool -> non-linearity.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..binarize import BinarizeConfig, binarize_
from ._apply import activation, scaled
from .registry import register_model

__all__ = ["vgg_small"]

WIDTHS = (128, 128, 256, 256, 512, 512)


@register_model("vgg_small", layout="cifar", input_size=(3, 32, 32), block_based=False,
                published_classes=10,
                paper="Zhang, Yang, Ye, Hua, 'LQ-Nets', ECCV 2018 (arXiv 1807.10029); binarized as in "
                      "Qin et al., 'IR-Net', CVPR 2020")
def vgg_small(*, num_classes: int = 10, in_chans: int = 3, method: BinarizeConfig | None = None,
              width_mult: float = 1.0) -> nn.Module:
    """VGG-Small: 4,660,106 float parameters for 10 classes (the papers quote "4.6 M" and give no exact
    count). An adaptive average pool to 4x4 before the classifier (the identity at 32x32) lets it run on
    other input sizes. The first conv and the classifier stay float when binarized. ``width_mult`` scales
    every width (base 128)."""
    binary, layers, cin = method is not None, OrderedDict(), in_chans
    for i, cout in enumerate(scaled(128, width_mult) * w // 128 for w in WIDTHS):
        pool = [nn.MaxPool2d(2)] if i % 2 else []
        layers[f"conv{i}"] = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                                           *pool, activation(binary))
        cin = cout
    layers["pool"] = nn.AdaptiveAvgPool2d(4)
    layers["flatten"] = nn.Flatten()
    layers["fc"] = nn.Linear(cin * 16, num_classes)
    model = nn.Sequential(layers)
    return model if method is None else binarize_(model, method)
