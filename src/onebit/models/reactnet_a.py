"""``reactnet_a``: ReActNet-A, the MobileNetV1-derived binary network of ReActNet.

Liu, Shen, Savvides, Cheng, "ReActNet: Towards Precise Binary Neural Network with Generalized Activation
Functions", ECCV 2020 (arXiv 2003.03488); code liuzechun/ReActNet. MobileNetV1 (Howard et al., arXiv
1704.04861) with every depthwise 3x3 replaced by a full 3x3 conv: a float 3x3/2 stem (32 channels),
13 blocks with widths 64-128-128-256-256-512x6-1024-1024 (stride 2 where the width grows, except to 64),
global average pooling and a float FC. Binary blocks are :class:`onebit.nn.ReActNetBlock` configured by the
method (RSign/RPReLU with ``method="reactnet"``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..binarize import BinarizeConfig
from ..nn import ReActNetBlock
from ._apply import as_method, attach, block_spec, head_activation, scaled
from .registry import register_model

__all__ = ["FloatReActNetBlock", "ReActNetA", "STAGE_WIDTHS", "reactnet_a"]

#: the stem's width, then the output width of each of the 13 blocks (ReActNet's ``stage_out_channel``)
STAGE_WIDTHS = (32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024)


class FloatReActNetBlock(nn.Module):
    """The float counterpart of :class:`onebit.nn.ReActNetBlock`: 3x3 conv (stride s) -> BN, + x (avg-pooled
    when s = 2), ReLU; then one 1x1 conv -> BN, + input, ReLU, or two such 1x1 units concatenated when the
    width doubles."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        if out_channels not in (in_channels, 2 * in_channels):
            raise ValueError(f"a ReActNet block keeps or doubles the width, got {in_channels} -> {out_channels}")
        self.conv3x3 = nn.Sequential(nn.Conv2d(in_channels, in_channels, 3, stride, 1, bias=False),
                                     nn.BatchNorm2d(in_channels))
        self.pool = nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False) if stride == 2 else nn.Identity()
        self.conv1x1 = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_channels, in_channels, 1, bias=False), nn.BatchNorm2d(in_channels))
            for _ in range(out_channels // in_channels))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.conv3x3(x) + self.pool(x))
        outs = [self.relu(unit(y) + y) for unit in self.conv1x1]
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)


class ReActNetA(nn.Module):
    """ReActNet-A; ``method=None`` builds the float counterpart (:class:`FloatReActNetBlock`)."""

    def __init__(self, *, num_classes: int, in_chans: int, method: BinarizeConfig | None = None,
                 width_mult: float = 1.0) -> None:
        super().__init__()
        base = scaled(STAGE_WIDTHS[0], width_mult)
        widths = [base * w // STAGE_WIDTHS[0] for w in STAGE_WIDTHS]
        spec = None if method is None else block_spec(as_method(method), shortcut="per_conv")
        relu = [nn.ReLU()] if method is None else []  # no ReLU before the first binarizer
        self.stem = nn.Sequential(nn.Conv2d(in_chans, base, 3, 2, 1, bias=False), nn.BatchNorm2d(base), *relu)
        blocks = []
        for cin, cout in zip(widths[:-1], widths[1:]):
            stride = 2 if cout != cin and cout != widths[1] else 1
            blocks.append(FloatReActNetBlock(cin, cout, stride) if spec is None
                          else ReActNetBlock(cin, cout, stride, spec=spec))
        self.blocks = nn.Sequential(*blocks)
        self.head_act = head_activation(None if method is None else as_method(method))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], num_classes)
        if method is not None:
            attach(self, method, float_layers=("stem.0", "fc"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head_act(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_model("reactnet_a", layout="imagenet", input_size=(3, 224, 224), block_based=True,
                paper="Liu, Shen, Savvides, Cheng, 'ReActNet', ECCV 2020 (arXiv 2003.03488), ReActNet-A")
def reactnet_a(*, num_classes: int = 1000, in_chans: int = 3, method: BinarizeConfig | None = None,
               width_mult: float = 1.0) -> ReActNetA:
    """ReActNet-A. The paper reports operations (BOPs 4.82e9, FLOPs 0.12e9), not a parameter count, so
    there is no published count to test; here the float model has 29,300,936 parameters for 1000 classes
    (28.2 M of them in the binary convs once binarized); the ReActNet version adds 43,648
    (RSign shifts, RPReLU shifts and slopes). ``width_mult`` scales every width (base 32)."""
    return ReActNetA(num_classes=num_classes, in_chans=in_chans, method=method, width_mult=width_mult)
