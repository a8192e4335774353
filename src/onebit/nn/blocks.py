"""Binary blocks configured by a method: one-conv units, basic blocks, ReActNet blocks, bottlenecks.

A :class:`BlockSpec` carries the block-level settings of a method (quantizers, shortcut, activation,
normalisation placement, Elastic-Link). ``onebit.methods.get(name).block_spec()`` returns one, and every
block accepts either a BlockSpec or an object with a ``block_spec()`` method (a method config).

The unit is the common element (Bi-Real Net, ReActNet, Si-BNN, IR-Net)::

    x -> [BN if pre_norm] -> BinaryConv2d (input + weight quantizers) -> [BN if post_norm]
      -> (+ real shortcut(x) | Elastic-Link(x)) -> activation

Shortcut and downsample convs built here are real-valued ``nn.Conv2d`` (methods.md 9.15).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .conv import BinaryConv2d
from .dynamic import DyPReLU
from .elastic_link import ElasticLink
from .rprelu import RPReLU

__all__ = [
    "ACTIVATIONS", "DOWNSAMPLES", "SHORTCUTS", "BinaryBasicBlock", "BinaryBottleneckBlock", "BinaryConvUnit",
    "BlockSpec", "ReActNetBlock", "make_activation", "make_shortcut",
]

SHORTCUTS = ("none", "per_conv", "block")
DOWNSAMPLES = ("avgpool_conv", "conv_avgpool", "option_a")
ACTIVATIONS = ("none", "relu", "hardtanh", "prelu", "rprelu", "dyprelu")


@dataclass
class BlockSpec:
    """Block-level settings of a method.

    Attributes:
        input_quantizer, weight_quantizer, pad_value: for every :class:`BinaryConv2d` in the block.
        shortcut: ``"none"`` (plain), ``"per_conv"`` (a real shortcut around every binary conv: Bi-Real,
            ReActNet, Si-BNN) or ``"block"`` (one residual per basic block: standard ResNet / IR-Net).
        downsample: the real shortcut when the shape changes: ``"avgpool_conv"`` (AvgPool -> 1x1 conv ->
            BN; Bi-Real/ReActNet), ``"conv_avgpool"`` (1x1 conv -> BN -> AvgPool; Si-BNN) or
            ``"option_a"`` (subsample + zero channels; CIFAR ResNet-20). With equal channels only the pool.
        activation: after each unit: none / relu / hardtanh / prelu / rprelu / dyprelu;
            ``activation_options`` go to its constructor (e.g. ``{"reduction": 16}`` for dyprelu).
        pre_norm: BatchNorm before the binarizer (Si-BNN, XNOR-Net); post_norm: BatchNorm after the conv.
        elastic_link: None, or the :class:`ElasticLink` options; the link then goes around every binary
            conv and replaces that conv's real shortcut.
    """

    input_quantizer: Any = "ste_sign"
    weight_quantizer: Any = "ste_sign"
    pad_value: float = 0.0
    shortcut: str = "per_conv"
    downsample: str = "avgpool_conv"
    activation: str = "none"
    activation_options: dict[str, Any] = field(default_factory=dict)
    pre_norm: bool = False
    post_norm: bool = True
    elastic_link: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for what, value, valid in (("shortcut", self.shortcut, SHORTCUTS), ("downsample", self.downsample, DOWNSAMPLES),
                                   ("activation", self.activation, ACTIVATIONS)):
            if value not in valid:
                raise ValueError(f"{what} must be one of {list(valid)}, got {value!r}")


def _as_spec(spec) -> BlockSpec:
    if isinstance(spec, BlockSpec):
        return spec
    if hasattr(spec, "block_spec"):
        return spec.block_spec()
    raise TypeError(f"expected a BlockSpec or a method config, got {type(spec).__name__}")


def make_activation(kind: str, channels: int, **options) -> nn.Module:
    """The activation module ``kind`` (see :data:`ACTIVATIONS`) for ``channels`` channels."""
    if kind not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {kind!r}")
    if kind in ("none", "relu", "hardtanh") and options:
        raise ValueError(f"activation {kind!r} takes no options, got {sorted(options)}")
    try:
        if kind == "prelu":
            return nn.PReLU(channels, init=options.pop("slope_init", 0.25), **options)
        if kind == "rprelu":
            return RPReLU(channels, **options)
        if kind == "dyprelu":
            return DyPReLU(channels, **options)
    except TypeError as exc:
        raise ValueError(f"bad options for activation {kind!r}: {exc}") from None
    return {"none": nn.Identity, "relu": nn.ReLU, "hardtanh": nn.Hardtanh}[kind]()


class _OptionA(nn.Module):
    """Parameter-free shortcut: subsample by ``stride`` and append zero channels (He et al. option A)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"option_a shortcut cannot reduce channels ({in_channels} -> {out_channels})")
        self.extra, self.stride = out_channels - in_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


def _pool(stride: int) -> nn.Module:
    return nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)


def make_shortcut(in_channels: int, out_channels: int, stride: int = 1, downsample: str = "avgpool_conv") -> nn.Module:
    """The real-valued shortcut from (in_channels, H, W) to (out_channels, H/stride, W/stride)."""
    if downsample not in DOWNSAMPLES:
        raise ValueError(f"downsample must be one of {list(DOWNSAMPLES)}, got {downsample!r}")
    if in_channels == out_channels and stride == 1:
        return nn.Identity()
    if downsample == "option_a":
        return _OptionA(in_channels, out_channels, stride)
    if in_channels == out_channels:
        return _pool(stride)
    conv = [nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)]
    pool = [_pool(stride)] if stride > 1 else []
    return nn.Sequential(*(pool + conv if downsample == "avgpool_conv" else conv + pool))


class BinaryConvUnit(nn.Module):
    """One binary conv with its normalisation, shortcut or Elastic-Link, and activation (see module doc).

    ``shortcut=None`` follows the spec (a real shortcut when ``spec.shortcut == "per_conv"``); True/False
    force it. ``forward(x, residual=None)`` adds ``residual`` (a block-level shortcut) before the activation.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, *, spec,
                 shortcut: bool | None = None, groups: int = 1) -> None:
        super().__init__()
        spec = _as_spec(spec)
        conv = BinaryConv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups,
                            bias=False, input_quantizer=spec.input_quantizer,
                            weight_quantizer=spec.weight_quantizer, pad_value=spec.pad_value)
        parts = ([nn.BatchNorm2d(in_channels)] if spec.pre_norm else []) + [conv]
        parts += [nn.BatchNorm2d(out_channels)] if spec.post_norm else []
        body = parts[0] if len(parts) == 1 else nn.Sequential(*parts)
        use_shortcut = spec.shortcut == "per_conv" if shortcut is None else shortcut
        self.shortcut: nn.Module | None = None
        if spec.elastic_link is not None:
            self.body: nn.Module = ElasticLink(body, in_channels, out_channels, stride, **spec.elastic_link)
        else:
            self.body = body
            if use_shortcut:
                self.shortcut = make_shortcut(in_channels, out_channels, stride, spec.downsample)
        self.act = make_activation(spec.activation, out_channels, **dict(spec.activation_options))

    @property
    def conv(self) -> BinaryConv2d:
        """The unit's binary conv (registered once, inside ``body``)."""
        return next(m for m in self.body.modules() if isinstance(m, BinaryConv2d))

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        y = self.body(x)
        if self.shortcut is not None:
            y = y + self.shortcut(x)
        if residual is not None:
            y = y + residual
        return self.act(y)


class BinaryBasicBlock(nn.Module):
    """Two 3x3 binary units (ResNet basic block). ``spec.shortcut``: per_conv = a shortcut around each
    conv (Bi-Real-18, ReActNet-18, Si-BNN); block = one residual around both; none = plain."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, spec) -> None:
        super().__init__()
        spec = _as_spec(spec)
        per_conv = spec.shortcut == "per_conv"
        self.unit1 = BinaryConvUnit(in_channels, out_channels, 3, stride, spec=spec, shortcut=per_conv)
        self.unit2 = BinaryConvUnit(out_channels, out_channels, 3, 1, spec=spec, shortcut=per_conv)
        self.residual = (make_shortcut(in_channels, out_channels, stride, spec.downsample)
                         if spec.shortcut == "block" else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = None if self.residual is None else self.residual(x)
        return self.unit2(self.unit1(x), residual=residual)


class ReActNetBlock(nn.Module):
    """The ReActNet-A (MobileNetV1-derived) block.

    1. 3x3 binary conv C_in -> C_in with stride s, BN, + x (avg-pooled when s = 2), activation;
    2. 1x1 binary conv C_in -> C_in, BN, + input, activation — or, when C_out = 2 C_in, two parallel such
       1x1 units on the same input, concatenated.
    With ``spec.elastic_link`` each of these binary convs gets an Elastic-Link in place of its shortcut
    (the structure stays ReActNet's, so ReActNet weights stay compatible); with ``spec.shortcut == "none"``
    the shortcuts are dropped.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, spec) -> None:
        super().__init__()
        spec = _as_spec(spec)
        if out_channels not in (in_channels, 2 * in_channels):
            raise ValueError(f"a ReActNet block keeps or doubles the width, got {in_channels} -> {out_channels}")
        use = spec.shortcut != "none"
        self.conv3x3 = BinaryConvUnit(in_channels, in_channels, 3, stride, spec=spec, shortcut=use)
        copies = out_channels // in_channels
        self.conv1x1 = nn.ModuleList(BinaryConvUnit(in_channels, in_channels, 1, 1, spec=spec, shortcut=use)
                                     for _ in range(copies))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3x3(x)
        outs = [unit(y) for unit in self.conv1x1]
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)


class BinaryBottleneckBlock(nn.Module):
    """1x1 reduce -> 3x3 -> 1x1 expand, all binary, with the block residual of a ResNet bottleneck.

    This is where Elastic-Link matters most: the channel-changing 1x1 convs get a Squeeze (reduce) and an
    Expand (expand) link; without Elastic-Link, per-conv shortcuts exist only where the shape allows an
    identity (``spec.shortcut == "per_conv"``).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, spec, expansion: int = 4) -> None:
        super().__init__()
        spec = _as_spec(spec)
        if out_channels % expansion:
            raise ValueError(f"out_channels ({out_channels}) must be a multiple of expansion ({expansion})")
        mid = out_channels // expansion
        per_conv = spec.shortcut == "per_conv"
        self.reduce = BinaryConvUnit(in_channels, mid, 1, 1, spec=spec, shortcut=per_conv and in_channels == mid)
        self.conv = BinaryConvUnit(mid, mid, 3, stride, spec=spec, shortcut=per_conv)
        self.expand = BinaryConvUnit(mid, out_channels, 1, 1, spec=spec, shortcut=False)
        self.residual = make_shortcut(in_channels, out_channels, stride, spec.downsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.conv(self.reduce(x)), residual=self.residual(x))
