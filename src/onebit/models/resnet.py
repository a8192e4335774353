"""ResNets: CIFAR ResNet-18 / ResNet-20 and the ImageNet-layout Bi-Real-18 / ReActNet-18.

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv 1512.03385).
Binary versions are built from the method's :class:`onebit.nn.BinaryBasicBlock` (see ``_apply``):

* ``resnet18`` / ``resnet20``: CIFAR layout (3x3 stem, no max-pool). A method without shortcuts keeps
  the ResNet's block residual (IR-Net's binary ResNets: Qin et al., CVPR 2020); Bi-Real-style methods put
  their shortcut around every binary conv.
* ``bireal18`` / ``reactnet_resnet18``: ImageNet layout (7x7/2 stem, 3x3/2 max-pool) with a real shortcut
  around every binary conv whatever the method (Liu et al., Bi-Real Net, ECCV 2018; ReActNet-18 is
  Bi-Real-18 with ReActNet's RSign and RPReLU, Liu et al., ECCV 2020).

The float models are the standard ResNets (plain ``nn.Conv2d``, ReLU, 1x1-conv projection shortcuts or
option A); binary stems drop the ReLU (a ReLU before a sign makes every input +1) and, with the method's
``head_relu`` (Si-BNN), a ReLU precedes global pooling.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..binarize import BinarizeConfig
from ..nn import BinaryBasicBlock, make_shortcut
from ._apply import as_method, attach, block_spec, head_activation, scaled
from .registry import register_model

__all__ = ["BasicBlock", "ResNet", "bireal18", "reactnet_resnet18", "resnet18", "resnet20"]

FLOAT_DOWNSAMPLES = ("conv", "option_a")


class BasicBlock(nn.Module):
    """The float ResNet basic block: conv3x3 -> BN -> ReLU -> conv3x3 -> BN, + shortcut, ReLU.

    ``downsample``: ``"conv"`` (1x1 conv with stride + BN, He et al. option B) or ``"option_a"``
    (subsample and zero-pad channels, parameter-free, He et al.'s CIFAR choice).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, downsample: str = "conv") -> None:
        super().__init__()
        if downsample not in FLOAT_DOWNSAMPLES:
            raise ValueError(f"downsample must be one of {list(FLOAT_DOWNSAMPLES)}, got {downsample!r}")
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = (make_shortcut(in_channels, out_channels, stride, "option_a") if downsample == "option_a"
                             else nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                                nn.BatchNorm2d(out_channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


def _stem(layout: str, in_chans: int, width: int, binary: bool) -> nn.Sequential:
    relu = [] if binary else [nn.ReLU()]
    if layout == "cifar":
        return nn.Sequential(nn.Conv2d(in_chans, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), *relu)
    return nn.Sequential(nn.Conv2d(in_chans, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), *relu,
                         nn.MaxPool2d(3, 2, 1))


class ResNet(nn.Module):
    """A ResNet of basic blocks: stem, ``len(depths)`` stages (stride 2 from the second), global pool, FC.

    Args:
        depths, widths: blocks and channels per stage.
        layout: ``"cifar"`` (3x3 stem) or ``"imagenet"`` (7x7/2 stem + max-pool).
        method: None (float :class:`BasicBlock`) or a BinarizeConfig / Method (``BinaryBasicBlock``).
        shortcut: the architecture's shortcut for methods that have none (``"block"`` or ``"per_conv"``).
        downsample: the shortcut on a shape change; None = float ``"conv"`` / the method's own.
    """

    def __init__(self, depths: Sequence[int], widths: Sequence[int], *, layout: str, num_classes: int,
                 in_chans: int, method: BinarizeConfig | None = None, shortcut: str = "block",
                 downsample: str | None = None) -> None:
        super().__init__()
        if len(depths) != len(widths) or not depths:
            raise ValueError(f"depths and widths must be non-empty and of equal length, got {depths}, {widths}")
        spec = None if method is None else block_spec(as_method(method), shortcut=shortcut, downsample=downsample)
        self.stem = _stem(layout, in_chans, widths[0], method is not None)
        cin, stages = widths[0], []
        for i, (depth, cout) in enumerate(zip(depths, widths)):
            blocks = []
            for j in range(depth):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(BasicBlock(cin, cout, stride, downsample=downsample or "conv") if spec is None
                              else BinaryBasicBlock(cin, cout, stride, spec=spec))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head_act = head_activation(None if method is None else as_method(method))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        if method is not None:
            attach(self, method, float_layers=("stem.0", "fc"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head_act(self.stages(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def _widths(base: int, stages: int, width_mult: float) -> tuple[int, ...]:
    first = scaled(base, width_mult)
    return tuple(first * 2**i for i in range(stages))


_HE = "He, Zhang, Ren, Sun, 'Deep Residual Learning for Image Recognition', CVPR 2016 (arXiv 1512.03385)"
_BIREAL = "Liu et al., 'Bi-Real Net', ECCV 2018 (arXiv 1808.00278)"
_REACTNET = "Liu, Shen, Savvides, Cheng, 'ReActNet', ECCV 2020 (arXiv 2003.03488)"


@register_model("resnet18", layout="cifar", input_size=(3, 32, 32), block_based=True,
                published_params=11_173_962, published_classes=10, paper=f"{_HE}; CIFAR layout")
def resnet18(*, num_classes: int = 10, in_chans: int = 3, method: BinarizeConfig | None = None,
             downsample: str | None = None, width_mult: float = 1.0) -> ResNet:
    """CIFAR ResNet-18: 3x3 stem, stages 64-128-256-512 x 2 basic blocks, 1x1-conv projection shortcuts.
    11,173,962 float parameters for 10 classes (the CIFAR ResNet-18 everyone trains). ``width_mult`` scales
    every width (here and in the other ResNets)."""
    return ResNet((2, 2, 2, 2), _widths(64, 4, width_mult), layout="cifar", num_classes=num_classes,
                  in_chans=in_chans, method=method, shortcut="block", downsample=downsample)


@register_model("resnet20", layout="cifar", input_size=(3, 32, 32), block_based=True,
                published_params=269_722, published_classes=10, paper=f"{_HE}, section 4.2")
def resnet20(*, num_classes: int = 10, in_chans: int = 3, method: BinarizeConfig | None = None,
             downsample: str = "option_a", width_mult: float = 1.0) -> ResNet:
    """CIFAR ResNet-20 (6n+2, n = 3): 3x3 stem 16, stages 16-32-64 x 3 basic blocks, **option-A** shortcuts
    (subsample + zero channels, parameter-free: the paper's CIFAR choice, kept for binary versions as in
    IR-Net). 269,722 float parameters for 10 classes ("0.27M" in the paper); ``downsample="conv"`` (float)
    or a block downsample (binary) adds 1x1-conv projections."""
    return ResNet((3, 3, 3), _widths(16, 3, width_mult), layout="cifar", num_classes=num_classes,
                  in_chans=in_chans, method=method, shortcut="block", downsample=downsample)


@register_model("bireal18", layout="imagenet", input_size=(3, 224, 224), block_based=True,
                published_params=11_689_512, paper=f"{_BIREAL}; float backbone: {_HE}")
def bireal18(*, num_classes: int = 1000, in_chans: int = 3, method: BinarizeConfig | None = None,
             width_mult: float = 1.0) -> ResNet:
    """Bi-Real-18: the ImageNet ResNet-18 with a real shortcut around every binary conv (per-conv
    shortcuts for every method) and AvgPool -> 1x1 conv -> BN downsampling (the method's). The float model
    is the standard ResNet-18: 11,689,512 parameters for 1000 classes; the binary one has the same count
    plus the method's own parameters (e.g. ReActNet's RSign/RPReLU shifts)."""
    return ResNet((2, 2, 2, 2), _widths(64, 4, width_mult), layout="imagenet", num_classes=num_classes,
                  in_chans=in_chans, method=method, shortcut="per_conv")


@register_model("reactnet_resnet18", layout="imagenet", input_size=(3, 224, 224), block_based=True,
                published_params=11_689_512, paper=f"{_REACTNET}, ReActNet-18 (on Bi-Real-18)")
def reactnet_resnet18(*, num_classes: int = 1000, in_chans: int = 3, method: BinarizeConfig | None = None,
                      width_mult: float = 1.0) -> ResNet:
    """ReActNet-18: the paper's ResNet-based ReActNet is Bi-Real-18 with RSign and RPReLU, so the topology
    is :func:`bireal18`'s; use it with ``method="reactnet"``. Float: ResNet-18, 11,689,512 parameters."""
    return ResNet((2, 2, 2, 2), _widths(64, 4, width_mult), layout="imagenet", num_classes=num_classes,
                  in_chans=in_chans, method=method, shortcut="per_conv")
