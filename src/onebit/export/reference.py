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

from typing import Callable

import torch
import torch.nn.functional as F

from .. import bitpack
from .format import ModelFile, read_model
from .graph import sb_mask_words, validate

__all__ = ["OpHook", "apply_op", "run"]

#: ``hook(op, inputs, output) -> replacement output or None`` (see :func:`run`)
OpHook = Callable[[dict, list[torch.Tensor], torch.Tensor], "torch.Tensor | None"]

_FLOAT_OPS = ("conv2d", "linear", "affine", "relu", "hardtanh", "prelu", "rprelu", "add", "concat", "maxpool",
              "avgpool", "global_avgpool", "flatten")


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



def quantize_activation(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample symmetric int8 quantization (:mod:`onebit.export.quantize`): (q as float64, s_x float32 (N,)).

    ``inv = 127 / max|x|`` and ``x * inv`` are float32 operations, as in the engine; ``v > -127 ? v : -127``
    then ``v < 127 ? v : 127`` is the engine's clamp (a NaN becomes -127), torch.round rounds half to even."""
    amax = x.abs().reshape(x.shape[0], -1).amax(dim=1)
    inv = torch.where(amax > 0, torch.tensor(127.0) / amax, torch.zeros_like(amax))
    v = x * _ns(inv, x)
    v = torch.where(v > -127.0, v, torch.tensor(-127.0))
    v = torch.where(v < 127.0, v, torch.tensor(127.0))
    return v.round().double(), amax / torch.tensor(127.0)


def _quantized(x, op, t):
    """qconv2d / qlinear: exact integer dot products of int8 activations and weights, then
    y = float32(acc) * (s_x * s_w) + bias (float32, two roundings)."""
    q, sx = quantize_activation(x)
    w, a = t["weight"].double(), op["attrs"]
    if op["op"] == "qconv2d":
        top, bottom, left, right = a["padding"]
        acc = F.conv2d(F.pad(q, (left, right, top, bottom)), w, None, a["stride"], 0, a["dilation"], a["groups"])
    else:
        acc = F.linear(q, w)
    y = acc.to(torch.float32) * (_ns(sx, acc) * _ch(t["weight_scale"], acc))
    return y + _ch(t["bias"], y) if "bias" in t else y


# ---- method ops ---------------------------------------------------------------------------------------

def _sbinary(x, op, t):
    """sbconv2d / sblinear: two-level weights w = beta + gain m (m in {0, 1}) on +-1 inputs.

    dot(x, w) = beta sum_V x + gain dot_V(x, m) over the taps V that count (the padding value 0 of pad
    "zero" adds nothing; pad "one" pads +1). Both sums are exact integers (float64 here); the float
    result is v = float32(dot_m) gain + float32(sum_x) beta, then + bias, then the folded BatchNorm.
    """
    a = op["attrs"]
    xv = _values(x, "pm1")
    if "mask" not in t:  # the sparse encoding: index + nonzero words (fold.nonzero_words)
        t = {**t, "mask": torch.from_numpy(sb_mask_words(op, t["mask_index"].numpy(), t["mask_words"].numpy()))}
    if "kernel" in a:
        cin_g = a["in_channels"] // a["groups"]
        m = bitpack.unpack(t["mask"], cin_g, dtype=torch.float64).permute(0, 3, 1, 2)
        m = (1.0 - m) / 2.0                              # packed with bit 1 = mask 1 (the "-1" bit)
        top, bottom, left, right = a["padding"]
        xv = F.pad(xv, (left, right, top, bottom), value=1.0 if a["pad"] == "one" else 0.0)
        conv = lambda w: F.conv2d(xv, w, None, a["stride"], 0, a["dilation"], a["groups"])  # noqa: E731
        ones = torch.ones(a["groups"], cin_g, *a["kernel"], dtype=torch.float64)
        dm, sx = conv(m), conv(ones).repeat_interleave(a["out_channels"] // a["groups"], dim=1)
    else:
        m = (1.0 - bitpack.unpack(t["mask"], a["in_features"], dtype=torch.float64)) / 2.0
        dm, sx = F.linear(xv, m), xv.sum(dim=1, keepdim=True)
    v = dm.to(torch.float32) * _ch(t["gain"], dm) + sx.to(torch.float32) * _ch(t["beta"], dm)
    v = v + _ch(t["bias"], v)
    if "bn_scale" in t:
        v = _fma(v, _ch(t["bn_scale"], v), _ch(t["bn_shift"], v))
    return v


def _channel_stats(x, statistic):
    """Per-sample channel mean (and population std): computed in float64, rounded once."""
    flat = x.double().reshape(x.shape[0], x.shape[1], -1)
    mean = flat.mean(dim=2)
    out = [mean] if statistic == "mean" else [mean, (flat - mean[..., None]).square().mean(dim=2).sqrt()]
    return torch.cat(out, dim=1).to(torch.float32)


def _elastic_align(x, path, cout):
    if path == "identity":
        return x
    n, c = x.shape[:2]
    if path.startswith("squeeze"):
        s = x.reshape(n, cout, c // cout, *x.shape[2:]).sum(dim=2)
        return s / (c // cout) if path == "squeeze_mean" else s
    g = cout // c
    return x.repeat(1, g, 1, 1) if path == "expand_tile" else x.repeat_interleave(g, dim=1)


def _ns(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-sample (N, C) vector viewed along dimension 1 of x."""
    return v.reshape([v.shape[0], -1] + [1] * (x.dim() - 2))


def _method_op(kind, xs, op, t):
    x, a = xs[0], op["attrs"]
    if kind == "adaptive_pool":
        pool = F.adaptive_max_pool2d if a["mode"] == "max" else F.adaptive_avg_pool2d
        return pool(x, a["output_size"])
    if kind == "subsample":
        y = x[:, :, :: a["stride"][0], :: a["stride"][1]]
        return F.pad(y, (0, 0, 0, 0, 0, a["out_channels"] - y.shape[1]))
    if kind == "channel_stats":
        return _channel_stats(x, a["statistic"])
    if kind == "tanh":
        return torch.tanh(x)
    if kind == "dybitpack":                                 # sign(x - alpha) with bit 1 = -1
        return x < _ns(xs[1], x)
    if kind == "dyprelu":
        c = x.shape[1]
        return F.prelu(x - _ns(xs[1][:, :c], x), t["slope"]) + _ns(xs[1][:, c:], x)
    if kind == "elastic_add":
        return xs[0] + _ch(t["gate"], xs[0]) * _elastic_align(xs[1], a["path"], xs[0].shape[1])
    if kind in ("sbconv2d", "sblinear"):
        return _sbinary(x, op, t)
    raise AssertionError(kind)  # validate() admits only known ops


@torch.no_grad()
def apply_op(model: ModelFile, op: dict, xs: list[torch.Tensor]) -> torch.Tensor:
    """The output of graph op ``op`` of ``model`` (validated) on its input tensors ``xs``."""
    g = model.graph
    t = {role: torch.from_numpy(model.tensors[name]) for role, name in op["tensors"].items()}
    kind = op["op"]
    if kind == "bitpack":
        thr = _ch(t["thresholds"], xs[0]) if "thresholds" in t else 0.0
        return (xs[0] < thr) if op["attrs"]["mode"] == "sign" else (xs[0] > thr)
    if kind in ("bconv2d", "blinear"):
        domain = g["values"][op["inputs"][0]]["domain"]
        return (_bconv2d if kind == "bconv2d" else _blinear)(xs[0], op, t, domain)
    if kind == "bmaxpool":
        return _bmaxpool(xs[0], op, t)
    if kind in ("qconv2d", "qlinear"):
        return _quantized(xs[0], op, t)
    if kind in _FLOAT_OPS:
        return _float_op(kind, xs, op, t)
    return _method_op(kind, xs, op, t)


@torch.no_grad()
def run(model: ModelFile | bytes, x: torch.Tensor, *, hook: OpHook | None = None) -> torch.Tensor:
    """Run ``model`` (a parsed file or its bytes; validated here) on an (N, C, H, W) float32 input.

    ``hook(op, inputs, output)``, if given, is called after every op (``op`` is its graph record); a
    tensor it returns replaces that op's output for the rest of the run, as a PyTorch forward hook's
    does. Tests use it to steer the run along another executor's binarization decisions.
    """
    model = read_model(model) if isinstance(model, (bytes, bytearray, memoryview)) else model
    g = validate(model)
    want = g["values"][g["inputs"][0]]["shape"]
    if x.dim() != 4 or list(x.shape[1:]) != want:
        raise ValueError(f"input must have shape (N, {', '.join(map(str, want))}), got {tuple(x.shape)}")
    env = {g["inputs"][0]: x.to(torch.float32)}
    for op in g["ops"]:
        xs = [env[n] for n in op["inputs"]]
        out = apply_op(model, op, xs)
        if hook is not None:
            replaced = hook(op, xs, out)
            out = out if replaced is None else replaced
        env[op["outputs"][0]] = out
    return env[g["outputs"][0]]
