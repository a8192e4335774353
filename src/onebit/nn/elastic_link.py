"""Elastic-Link: add the gated real-valued input of a binary conv to its output.

Hu, Wu, Tan, Lu, Zeng, Wu, "Elastic-Link for Binarized Neural Network", AAAI 2022 (arXiv 2112.10149).
No code was released; the internals are onebit's reconstruction (methods.md 7.2, 9.13):

    Y = body(X) + gamma ⊙ P_s(T(X))

``body`` is the binary conv (optionally followed by its BatchNorm), ``T`` aligns channels (identity;
Squeeze = mean of each group of g consecutive channels when C_in = g C_out; Expand = tile the
channels g times when C_out = g C_in; a real 1x1 conv when the ratio is not an integer), ``P_s`` is
a 2x2-style average pool for stride s, and ``gamma`` a learnable gate per output channel (init 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ElasticLink"]

GATES = ("channel", "scalar")
SQUEEZES = ("mean", "sum")
EXPANDS = ("tile", "interleave")


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _channel_path(in_channels: int, out_channels: int) -> str:
    if in_channels == out_channels:
        return "identity"
    if in_channels % out_channels == 0:
        return "squeeze"
    if out_channels % in_channels == 0:
        return "expand"
    return "conv"


class ElasticLink(nn.Module):
    """``body`` plus a gated, channel-aligned, pooled copy of its real-valued input.

    Args:
        body: the binary conv (or a Sequential of conv and BatchNorm, or any module) the link goes around.
        in_channels, out_channels, stride: the body's input/output channels and spatial stride.
        gate: ``"channel"`` (gamma of shape (C_out,), default) or ``"scalar"``.
        gate_init: initial gamma (1.0 starts as a Bi-Real-style shortcut; e.g. 0.1 opens it gradually).
        squeeze: ``"mean"`` (default) or ``"sum"`` over each group of C_in / C_out input channels.
        expand: ``"tile"`` (default; output channel j copies input j mod C_in) or ``"interleave"`` (j // g).

    ``channel_path`` is one of identity / squeeze / expand / conv; ``conv`` (a real 1x1 conv, for a
    non-integer channel ratio) is onebit's fallback, not the paper's, and shows in the repr.
    If the pooled link does not match the body's output size (unusual padding or dilation), it is
    adaptively average-pooled to that size.
    """

    def __init__(self, body: nn.Module, in_channels: int, out_channels: int, stride=1, *, gate: str = "channel",
                 gate_init: float = 1.0, squeeze: str = "mean", expand: str = "tile") -> None:
        super().__init__()
        for what, value, valid in (("gate", gate, GATES), ("squeeze", squeeze, SQUEEZES), ("expand", expand, EXPANDS)):
            if value not in valid:
                raise ValueError(f"{what} must be one of {list(valid)}, got {value!r}")
        if min(in_channels, out_channels) < 1:
            raise ValueError(f"channels must be positive, got in={in_channels}, out={out_channels}")
        self.body = body
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride = _pair(stride)
        if min(self.stride) < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.squeeze, self.expand = squeeze, expand
        self.channel_path = _channel_path(in_channels, out_channels)
        self.align = nn.Conv2d(in_channels, out_channels, 1, bias=False) if self.channel_path == "conv" else None
        self.gate = nn.Parameter(torch.full((out_channels,) if gate == "channel" else (), float(gate_init)))

    @classmethod
    def around(cls, conv: nn.Conv2d, norm: nn.Module | None = None, **options) -> "ElasticLink":
        """An ElasticLink around ``conv`` (then ``norm``, if given), with the conv's channels and stride."""
        body = conv if norm is None else nn.Sequential(conv, norm)
        return cls(body, conv.in_channels, conv.out_channels, conv.stride, **options)

    def _align_channels(self, x: torch.Tensor) -> torch.Tensor:
        if self.channel_path == "identity":
            return x
        if self.channel_path == "conv":
            return self.align(x)
        n, c, h, w = x.shape
        if self.channel_path == "squeeze":
            grouped = x.reshape(n, self.out_channels, c // self.out_channels, h, w)
            return grouped.mean(dim=2) if self.squeeze == "mean" else grouped.sum(dim=2)
        g = self.out_channels // c
        return x.repeat(1, g, 1, 1) if self.expand == "tile" else x.repeat_interleave(g, dim=1)

    def link(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """gamma ⊙ P_s(T(x)), optionally resized to ``size`` (H, W)."""
        self._check(x)
        if self.stride != (1, 1):
            x = F.avg_pool2d(x, self.stride, self.stride, ceil_mode=True, count_include_pad=False)
        if size is not None and tuple(x.shape[-2:]) != tuple(size):
            x = F.adaptive_avg_pool2d(x, size)
        y = self._align_channels(x)
        gate = self.gate.reshape(-1, 1, 1) if self.gate.dim() else self.gate
        return gate * y

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"ElasticLink expects (N, {self.in_channels}, H, W), got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        y = self.body(x)
        return y + self.link(x, tuple(y.shape[-2:]))

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, stride={self.stride}, "
                f"channel_path={self.channel_path}, gate={'channel' if self.gate.dim() else 'scalar'}")
