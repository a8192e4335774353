"""``onebit.pack_(model)``: binary layers on packed weights, run by the C++ kernels inside PyTorch.

Each :class:`~onebit.nn.BinaryConv2d` / :class:`~onebit.nn.BinaryLinear` whose quantizers are
sign-type becomes a :class:`PackedBinaryConv2d`: its weight is stored once as packed bits (bit 1 =
-1, DESIGN section 3) with the per-output-channel scale alpha, and its forward is the custom op
``torch.ops.onebit.bconv2d_sign`` (``torch.library``), which packs the input's signs and runs the
dispatched XOR-popcount ``bconv2d`` kernel:

    y[n, o, p] = alpha_o * dot(sign(x - t)[n, :, window(p)], sign(W_o)) + b_o
    dot = K_valid - 2 popcount(A XOR B)          (K_valid: the taps inside the image when the layer
                                                  pads with 0; all taps with pad_value = +1)

which is what the float layer computes in eval mode, ``conv2d(pad(q_in(x)), alpha * sign(W)) + b``,
up to float rounding of the final scale (the dot product itself is exact). Inference only: a packed
layer has no latent weights and no gradient. Everything else in the model is left as it is.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import _layer_kernels as lk
from .export.fold import FoldError, binary_weight, pack_conv_weight
from .kernels import pack as pack_bits
from .nn import BinaryConv2d, BinaryLinear

__all__ = ["PackedBinaryConv2d", "pack_"]

#: input quantizers whose eval forward is sign(x - t) with t = 0 (or a per-channel ``threshold``)
_SIGN_INPUTS = {"ste_sign", "approx_sign", "swish_sign", "rsign"}


@torch.library.custom_op("onebit::bconv2d_sign", mutates_args=())
def bconv2d_sign(x: Tensor, words: Tensor, alpha: Tensor, bias: Tensor, shift: Tensor, in_channels: int,
                 kernel: list[int], stride: list[int], padding: list[int], dilation: list[int], groups: int,
                 pad_value: int) -> Tensor:
    """NCHW float ``x`` -> sign(x - shift) packed NHWC -> XOR-popcount conv -> alpha * acc + bias, NCHW."""
    signs = (x - shift.view(1, -1, 1, 1)).permute(0, 2, 3, 1).contiguous()
    packed = pack_bits(signs, groups=groups)
    y = lk.bconv2d(packed, words, in_channels,
                   stride=tuple(stride), padding=tuple(padding), dilation=tuple(dilation), groups=groups,
                   mode="xor", pad_value=pad_value, multiplier=alpha, bias=bias)
    return y.permute(0, 3, 1, 2).contiguous()


@bconv2d_sign.register_fake
def _(x, words, alpha, bias, shift, in_channels, kernel, stride, padding, dilation, groups, pad_value):
    size = [(x.shape[2 + i] + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in (0, 1)]
    return x.new_empty((x.shape[0], alpha.shape[0], *size))


class PackedBinaryConv2d(nn.Module):
    """A binary conv (or, with 1x1 kernels on 1x1 maps, a binary linear) on packed weights."""

    def __init__(self, layer: BinaryConv2d | BinaryLinear, name: str) -> None:
        super().__init__()
        self.linear = isinstance(layer, BinaryLinear)
        self.shift = nn.Buffer(_input_shift(layer, name))
        bits, alpha = _weight(layer, name)
        bits4 = bits.reshape(bits.shape[0], -1, 1, 1) if self.linear else bits
        self.words = nn.Buffer(torch.from_numpy(pack_conv_weight(bits4).view("int64")))
        self.alpha = nn.Buffer(alpha.to(torch.float32).contiguous())
        bias = layer.bias.detach() if layer.bias is not None else torch.zeros(bits.shape[0])
        self.bias = nn.Buffer(bias.to(torch.float32).contiguous())
        self.in_channels = layer.in_features if self.linear else layer.in_channels
        self.kernel = [1, 1] if self.linear else list(layer.kernel_size)
        self.stride = [1, 1] if self.linear else list(layer.stride)
        self.padding = [0, 0] if self.linear else list(layer.padding)
        self.dilation = [1, 1] if self.linear else list(layer.dilation)
        self.groups = 1 if self.linear else layer.groups
        self.pad_value = 1 if self.linear else int(layer.pad_value)

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1, 1, 1) if self.linear else x
        y = torch.ops.onebit.bconv2d_sign(flat.float().contiguous(), self.words, self.alpha, self.bias, self.shift,
                                          self.in_channels, self.kernel, self.stride, self.padding, self.dilation,
                                          self.groups, self.pad_value)
        return y.reshape(y.shape[0], -1) if self.linear else y

    def extra_repr(self) -> str:
        kind = "linear" if self.linear else f"kernel={tuple(self.kernel)}, stride={tuple(self.stride)}"
        return f"{self.in_channels} -> {self.alpha.numel()}, {kind}, packed words={tuple(self.words.shape)}"


def _input_shift(layer: nn.Module, name: str) -> Tensor:
    q = layer.input_quantizer
    qname = getattr(q, "name", type(q).__name__)
    if q is None or qname not in _SIGN_INPUTS:
        raise ValueError(f"pack_: layer {name!r} has input quantizer {qname!r}; packed layers need one of "
                         f"{sorted(_SIGN_INPUTS)} (export the model to the engine for the other methods)")
    channels = layer.in_features if isinstance(layer, BinaryLinear) else layer.in_channels
    if qname == "rsign":
        return q.threshold.detach().to(torch.float32).clone()
    return torch.zeros(channels)


def _weight(layer: nn.Module, name: str) -> tuple[Tensor, Tensor]:
    if isinstance(layer, BinaryConv2d) and (layer.padding_mode != "zeros" or layer.pad_value not in (0.0, 1.0, -1.0)):
        raise ValueError(f"pack_: layer {name!r}: padding must be zeros with pad_value 0, +1 or -1")
    try:
        return binary_weight(layer, name)
    except FoldError as exc:
        raise ValueError(f"pack_: {exc}") from None


@torch.no_grad()
def pack_(model: nn.Module) -> nn.Module:
    """Replace, in place, every binary conv/linear with sign-type quantizers by a packed layer.

    The model should be in eval mode (BatchNorm and other layers are left as they are); returns it.
    A binary layer that cannot be packed raises ValueError naming it; float layers are skipped.
    """
    targets = [(n, m) for n, m in model.named_modules() if isinstance(m, (BinaryConv2d, BinaryLinear))
               and m.input_quantizer is not None and m.weight_quantizer is not None]
    for name, layer in targets:
        packed = PackedBinaryConv2d(layer, name)
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, packed)
    return model
