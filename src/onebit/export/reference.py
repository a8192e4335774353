"""The reference executor: runs a ``.onebit`` file op by op with plain torch ops.

This is the executable spec of every op in :mod:`onebit.export.graph` (and the oracle the C++ engine
is tested against). Activations are NCHW float32 tensors, or bool tensors of bits with the same shape
(bit 1 = -1 in the pm1 domain, = 1 in the 01 domain). Binary dot products are computed exactly, in
float64 on the +-1 / {0,1} values (integers far below 2**53), then mapped by the output transform:

* float output: ``v = float32(d) * alpha + beta`` (two roundings, as PyTorch's conv + bias), then, with
  BatchNorm folded in, ``fma(v, bn_scale, bn_shift)`` (PyTorch's CPU BatchNorm);
* bits output: ``bit = (d >= threshold) XOR flip``.

Spatial padding of a binary conv is the *value* ``0`` (``pad="zero"``: for +-1 inputs a third value,
so the dot product at the border sums only the valid taps) or ``1`` (``pad="one"``: +1 for pm1, the
plain bit 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import bitpack
from .format import ModelFile, read_model
from .graph import validate

__all__ = ["run"]


def _fma(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """float32 fma(x, a, b): the float64 product is exact; the sum is rounded once to float64, then to float32."""
    return (x.double() * a.double() + b.double()).to(torch.float32)


def _ch(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-channel vector viewed along dimension 1 of x."""
    return t.reshape([1, -1] + [1] * (x.dim() - 2))


def _values(bits: torch.Tensor, domain: str) -> torch.Tensor:
    b = bits.to(torch.float64)
    return 1.0 - 2.0 * b if domain == "pm1" else b


def _unpack_conv_weight(w: torch.Tensor, cin_g: int) -> torch.Tensor:
    """uint64 (Cout, kh, kw, words) -> float64 +-1 (Cout, Cin/g, kh, kw)."""
    return bitpack.unpack(w, cin_g, dtype=torch.float64).permute(0, 3, 1, 2)


def _transform(d: torch.Tensor, op: dict, t: dict) -> torch.Tensor:
    if op["attrs"]["output"] == "bits":
        thr, flip = _ch(t["threshold"].long(), d), _ch(t["flip"].bool(), d)
        return (d >= thr) ^ flip
    v = d.to(torch.float32) * _ch(t["alpha"], d) + _ch(t["beta"], d)
    if "bn_scale" in t:
        v = _fma(v, _ch(t["bn_scale"], v), _ch(t["bn_shift"], v))
    return v


def _bconv2d(x, op, t, domain):
    a = op["attrs"]
    xv = _values(x, domain)
    top, bottom, left, right = a["padding"]
    xv = F.pad(xv, (left, right, top, bottom), value=1.0 if a["pad"] == "one" else 0.0)
    w = _unpack_conv_weight(t["weight"], a["in_channels"] // a["groups"])
    d = F.conv2d(xv, w, None, a["stride"], 0, a["dilation"], a["groups"])
    return _transform(d, op, t)


def _blinear(x, op, t, domain):
    w = bitpack.unpack(t["weight"], op["attrs"]["in_features"], dtype=torch.float64)
    return _transform(F.linear(_values(x, domain), w), op, t)


def _pool_args(a):
    return {"kernel_size": a["kernel"], "stride": a["stride"], "padding": a["padding"], "ceil_mode": a["ceil_mode"]}


def _bmaxpool(x, op, t):
    """Max-pool on bits: OR of the window where or_mask (bit rises with the value), AND elsewhere."""
    b = x.to(torch.float32)
    ors = F.max_pool2d(b, **_pool_args(op["attrs"])) > 0
    ands = -F.max_pool2d(-b, **_pool_args(op["attrs"])) > 0
    mask = _ch(t["or_mask"].bool(), ors)
    return torch.where(mask, ors, ands)


def _float_op(kind, xs, op, t):
    x, a = xs[0], op["attrs"]
    if kind == "conv2d":
        top, bottom, left, right = a["padding"]
        return F.conv2d(F.pad(x, (left, right, top, bottom)), t["weight"], t.get("bias"), a["stride"], 0,
                        a["dilation"], a["groups"])
    if kind == "linear":
        return F.linear(x, t["weight"], t.get("bias"))
    if kind == "affine":
        s, b = _ch(t["scale"], x), _ch(t["shift"], x)
        return _fma(x, s, b) if a["fma"] else x * s + b
    if kind == "relu":
        return F.relu(x)
    if kind == "hardtanh":
        return F.hardtanh(x, a["min"], a["max"])
    if kind == "prelu":
        return F.prelu(x, t["slope"])
    if kind == "rprelu":
        return F.prelu(x - _ch(t["shift_in"], x), t["slope"]) + _ch(t["shift_out"], x)
    if kind == "add":
        return xs[0] + xs[1]
    if kind == "concat":
        return torch.cat(xs, dim=1)
    if kind == "maxpool":
        return F.max_pool2d(x, **_pool_args(a))
    if kind == "avgpool":
        return F.avg_pool2d(x, **_pool_args(a), count_include_pad=a["count_include_pad"])
    if kind == "global_avgpool":
        return F.adaptive_avg_pool2d(x, 1)
    if kind == "flatten":
        return x.flatten(1)
    raise AssertionError(kind)  # validate() admits only known ops


@torch.no_grad()
def run(model: ModelFile | bytes, x: torch.Tensor) -> torch.Tensor:
    """Run ``model`` (a parsed file or its bytes; validated here) on an (N, C, H, W) float32 input."""
    model = read_model(model) if isinstance(model, (bytes, bytearray, memoryview)) else model
    g = validate(model)
    want = g["values"][g["inputs"][0]]["shape"]
    if x.dim() != 4 or list(x.shape[1:]) != want:
        raise ValueError(f"input must have shape (N, {', '.join(map(str, want))}), got {tuple(x.shape)}")
    env = {g["inputs"][0]: x.to(torch.float32)}
    for op in g["ops"]:
        t = {role: torch.from_numpy(model.tensors[name]) for role, name in op["tensors"].items()}
        xs = [env[n] for n in op["inputs"]]
        kind = op["op"]
        if kind == "bitpack":
            thr = _ch(t["thresholds"], xs[0]) if "thresholds" in t else 0.0
            out = (xs[0] < thr) if op["attrs"]["mode"] == "sign" else (xs[0] > thr)
        elif kind in ("bconv2d", "blinear"):
            domain = g["values"][op["inputs"][0]]["domain"]
            out = (_bconv2d if kind == "bconv2d" else _blinear)(xs[0], op, t, domain)
        elif kind == "bmaxpool":
            out = _bmaxpool(xs[0], op, t)
        else:
            out = _float_op(kind, xs, op, t)
        env[op["outputs"][0]] = out
    return env[g["outputs"][0]]
