"""Lowering of method modules and zoo layers beyond plain conv stacks (a mixin of ``lower.Lowerer``).

* binary-layer inputs: static thresholds (``bitpack``), Si-BNN scales of any sign, DySign (DyBNN:
  the hyper function as engine ops, then ``dybitpack`` with per-sample thresholds);
* two-level weights (SBNN's {alpha, beta} domain): ``sbconv2d`` / ``sblinear``;
* DyPReLU (hyper function + ``dyprelu``), Elastic-Link (binary body + pooled, aligned, gated link:
  ``elastic_add``);
* adaptive pooling (an ordinary pool when the windows are uniform, else ``adaptive_pool``), QuickNet's
  blur pool (a fixed depthwise conv), ResNet-20's option-A shortcut (``subsample``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import fx, nn

from .. import nn as onn
from . import fold
from .capture import ExportError
from .graph import pool_out_size

__all__ = ["MethodLowering", "adaptive_windows"]

_F32_MAX = float(np.finfo(np.float32).max)


def adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    """torch's adaptive pooling windows along one axis: [floor(i I / O), ceil((i + 1) I / O))."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def _uniform_pool(size: int, out: int) -> tuple[int, int] | None:
    """(kernel, stride) of an ordinary pool with exactly the adaptive windows, or None."""
    win = adaptive_windows(size, out)
    k, s = win[0][1] - win[0][0], (win[1][0] - win[0][0]) if out > 1 else 1
    if s < 1 or any((a, b) != (i * s, i * s + k) for i, (a, b) in enumerate(win)):
        return None
    return (k, s) if pool_out_size(size, k, s, 0, False) == out else None


class MethodLowering:
    """Mixin: needs ``emit``, ``value``, ``values``, ``float_in``, ``shape``, ``env``, ``bits_env``, ``modules``."""

    # ---- binary-layer inputs -----------------------------------------------------------------------
    def pack_input(self, node: fx.Node, src, q, name: str) -> tuple[str, str]:
        """(domain, bits value) of a binary layer's input ``src`` quantized by ``q``."""
        from .lower import input_spec  # noqa: PLC0415  (lower imports this module)

        if src in self.bits_env:
            return self.values[self.bits_env[src]]["domain"], self.bits_env[src]
        x = self.float_in(node, src)
        shape = self.values[x]["shape"]
        if getattr(q, "name", None) == "dysign":
            alpha = self.hyper(x, q.hyper, f"{name}.input_quantizer.hyper")
            if q.bound == "tanh":
                alpha = self.emit("tanh", f"{name}.input_quantizer.bound", [alpha], self.value([shape[0]]), {})
            return "pm1", self.emit("dybitpack", f"{name}.input_quantizer", [x, alpha],
                                    self.value(shape, "bits", "pm1"), {})
        domain, mode, thr = input_spec(q, name)
        if getattr(q, "name", None) == "si_heaviside" and not bool((q.scale > 0).all()):
            x, thr = self.si_negative_scale(x, q, name)
        return domain, self.emit("bitpack", f"{name}.input_quantizer", [x], self.value(shape, "bits", domain),
                                 {"mode": mode}, {} if thr is None else {"thresholds": thr})

    def si_negative_scale(self, x: str, q, name: str) -> tuple[str, torch.Tensor]:
        """Si-BNN H(s (x - b)) with s <= 0 somewhere: bit = x > b (s > 0), -x > -b <=> x < b (s < 0),
        never (s = 0). Negation is exact, so an affine (-1 / +1, shift 0) and thresholds +-b (FLT_MAX for
        s = 0) reproduce it bit for bit."""
        s, b = q.scale.detach().float().reshape(-1), q.bias.detach().float().reshape(-1)
        sign = torch.where(s < 0, -1.0, 1.0)
        thr = torch.where(s > 0, b, torch.where(s < 0, -b, torch.full_like(b, _F32_MAX)))
        neg = self.emit("affine", f"{name}.input_quantizer.negate", [x], self.value(self.values[x]["shape"]),
                        {"fma": False}, {"scale": sign, "shift": torch.zeros_like(sign)})
        return neg, thr

    def hyper(self, x: str, h: nn.Module, name: str) -> str:
        """DyBNN's hyper function FC2(ReLU(FC1(stats(x)))) as engine ops; returns its [out] value."""
        c = self.values[x]["shape"][0]
        stats = self.emit("channel_stats", f"{name}.pool", [x],
                          self.value([c * (2 if h.statistic == "mean_std" else 1)]), {"statistic": h.statistic})
        hid = self.dense(stats, h.fc1, f"{name}.fc1")
        hid = self.emit("relu", f"{name}.relu", [hid], self.value(self.values[hid]["shape"]), {})
        return self.dense(hid, h.fc2, f"{name}.fc2")

    def dense(self, x: str, fc: nn.Linear, name: str) -> str:
        tensors = {"weight": fc.weight.float()} | ({"bias": fc.bias.float()} if fc.bias is not None else {})
        return self.emit("linear", name, [x], self.value([fc.out_features]),
                         {"in_features": fc.in_features, "out_features": fc.out_features}, tensors)

    # ---- two-level ({alpha, beta}) weights -------------------------------------------------------------
    def sbinary(self, m, name: str, bits_in: str, out_shape, bn: nn.Module | None, bn_name: str = "") -> str:
        """sbconv2d / sblinear for SBNN-domain weights (float output, BatchNorm folded when given)."""
        if self.values[bits_in]["domain"] != "pm1":
            raise ExportError(f"module {name!r}: two-level ({{alpha, beta}}) weights need +-1 inputs "
                              "(a sign-type input quantizer)")
        try:
            mask, gain, beta = fold.two_level_weight(m, name)
        except fold.FoldError as exc:
            raise ExportError(str(exc)) from None
        is_conv = isinstance(m, onn.BinaryConv2d)
        attrs = self.conv_attrs(m, name) if is_conv else {"in_features": m.in_features, "out_features": m.out_features}
        bias = m.bias.detach().float() if m.bias is not None else torch.zeros_like(gain)
        packed = fold.pack_conv_weight(mask) if is_conv else fold.pack_linear_weight(mask)
        index, words = fold.nonzero_words(packed)
        # The smaller encoding: dense, or the nonzero words + a 1-bit-per-word index (fold.nonzero_words).
        enc = {"mask_index": index, "mask_words": words} if index.nbytes + words.nbytes < packed.nbytes else {"mask": packed}
        tensors = {**enc, "gain": gain, "beta": beta, "bias": bias}
        if bn is not None:
            tensors["bn_scale"], tensors["bn_shift"] = fold.batchnorm_affine(bn, bn_name)
        return self.emit("sbconv2d" if is_conv else "sblinear", name, [bits_in], self.value(out_shape), attrs, tensors)

    # ---- modules ---------------------------------------------------------------------------------------
    def method_handlers(self) -> dict:
        from ..models.quicknet import BlurPool2d  # noqa: PLC0415
        from ..nn.blocks import _OptionA  # noqa: PLC0415

        return {nn.AdaptiveAvgPool2d: self.adaptive_pool, nn.AdaptiveMaxPool2d: self.adaptive_pool,
                BlurPool2d: self.blurpool, _OptionA: self.option_a, onn.DyPReLU: self.dyprelu}

    def adaptive_pool(self, node, m, name, x):
        c, h, w = self.values[x]["shape"]
        out = [int(o) if o is not None else d for o, d in zip(_pair_none(m.output_size), (h, w))]
        is_max = isinstance(m, nn.AdaptiveMaxPool2d)
        if getattr(m, "return_indices", False):
            raise ExportError(f"module {name!r}: AdaptiveMaxPool2d(return_indices=True) is not supported")
        if out == [1, 1] and not is_max:
            return self.emit("global_avgpool", name, [x], self.value([c, 1, 1]), {})
        ph, pw = _uniform_pool(h, out[0]), _uniform_pool(w, out[1])
        if ph is not None and pw is not None:   # an ordinary pool: same windows, same divisor
            attrs = {"kernel": [ph[0], pw[0]], "stride": [ph[1], pw[1]], "padding": [0, 0], "ceil_mode": False}
            if is_max:
                return self.emit("maxpool", name, [x], self.value([c, *out]), attrs)
            return self.emit("avgpool", name, [x], self.value([c, *out]), attrs | {"count_include_pad": True})
        return self.emit("adaptive_pool", name, [x], self.value([c, *out]),
                         {"output_size": out, "mode": "max" if is_max else "avg"})

    def blurpool(self, node, m, name, x):
        k = m.kernel.detach().float()
        c, kh, kw = k.shape[0], k.shape[2], k.shape[3]
        attrs = {"kernel": [kh, kw], "stride": [m.stride, m.stride], "padding": [1, 1, 1, 1], "dilation": [1, 1],
                 "groups": c, "in_channels": c, "out_channels": c}
        return self.emit("conv2d", name, [x], self.value(self.shape(node)), attrs, {"weight": k.contiguous()})

    def option_a(self, node, m, name, x):
        return self.emit("subsample", name, [x], self.value(self.shape(node)),
                         {"stride": [m.stride, m.stride], "out_channels": self.shape(node)[0]})

    def dyprelu(self, node, m, name, x):
        h = self.hyper(x, m.hyper, f"{name}.hyper")
        return self.emit("dyprelu", name, [x, h], self.value(self.shape(node)), {},
                         {"slope": m.slope.detach().float()})

    def elastic_link(self, node: fx.Node, m: nn.Module, name: str) -> None:
        """y = body(x) (binary conv [+ BN], float output) + gate * align(pool(x)) as one ``elastic_add``."""
        body = list(m.body) if isinstance(m.body, nn.Sequential) else [m.body]
        if not isinstance(body[0], onn.BinaryConv2d) or len(body) > 2 or \
                (len(body) == 2 and not isinstance(body[1], nn.BatchNorm2d)):
            raise ExportError(f"module {name!r}: an ElasticLink body must be a BinaryConv2d, optionally followed "
                              f"by a BatchNorm2d; got {[type(b).__name__ for b in body]}")
        conv = body[0]
        cname = f"{name}.body" + (".0" if len(body) == 2 else "")
        out_shape = self.shape(node)
        _, bits_in = self.pack_input(node, node.args[0], conv.input_quantizer, cname)
        bn = body[1] if len(body) == 2 else None
        y = self.binary_float(conv, cname, bits_in, out_shape, bn, f"{name}.body.1")
        self.env[node] = self.emit("elastic_add", name, [y, self.link(node, m, name)], self.value(out_shape),
                                   {"path": _path(m)}, {"gate": m.gate.detach().float().expand(out_shape[0]).contiguous()})

    def link(self, node, m, name) -> str:
        x = self.float_in(node, node.args[0])
        c, h, w = self.values[x]["shape"]
        out_hw = self.shape(node)[1:]
        if tuple(m.stride) != (1, 1):
            (sh, sw) = m.stride
            h, w = pool_out_size(h, sh, sh, 0, True), pool_out_size(w, sw, sw, 0, True)
            x = self.emit("avgpool", f"{name}.link_pool", [x], self.value([c, h, w]),
                          {"kernel": [sh, sw], "stride": [sh, sw], "padding": [0, 0], "ceil_mode": True,
                           "count_include_pad": False})
        if [h, w] != out_hw:
            x = self.emit("adaptive_pool", f"{name}.link_resize", [x], self.value([c, *out_hw]),
                          {"output_size": list(out_hw), "mode": "avg"})
        if m.channel_path == "conv":
            x = self.emit("conv2d", f"{name}.align", [x], self.value([m.out_channels, *out_hw]),
                          {"kernel": [1, 1], "stride": [1, 1], "padding": [0, 0, 0, 0], "dilation": [1, 1],
                           "groups": 1, "in_channels": c, "out_channels": m.out_channels},
                          {"weight": m.align.weight.detach().float()})
        return x


def _pair_none(v):
    return (v, v) if v is None or isinstance(v, int) else tuple(v)


def _path(m) -> str:
    if m.channel_path in ("identity", "conv"):
        return "identity"
    return f"squeeze_{m.squeeze}" if m.channel_path == "squeeze" else f"expand_{m.expand}"
