"""The op list of a ``.onebit`` model: schema, shape rules and validation (the file's graph section).

A graph is JSON::

    {"version": 1,
     "values":  {name: {"kind": "float"|"bits", "shape": [C, H, W] | [F], "domain": "pm1"|"01"}},
     "inputs":  [name], "outputs": [name],
     "ops":     [{"op": type, "name": module path, "inputs": [name...], "outputs": [name],
                  "attrs": {...}, "tensors": {role: tensor name}}]}

Shapes leave out the batch dimension. ``float`` values are float32 activations in PyTorch's meaning
(channels, height, width); ``bits`` values are the same activations binarized with the bit convention
(:mod:`onebit.bitpack`, ``domain`` says whether bit 1 means -1 or 1). The memory layout (the engine
uses NHWC, channels packed innermost) is the executor's business, not the file's.

Op semantics are executable in :mod:`onebit.export.reference`; this module checks that a graph is
well formed (every name, attribute, tensor dtype and shape) so that an executor may trust it.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .format import ModelFile, ModelFileError

__all__ = ["GRAPH_VERSION", "OPS", "conv_out_size", "pool_out_size", "validate"]

GRAPH_VERSION = 1
PAD_MODES = ("zero", "one")   # value of spatial padding after binarization: 0 or +1 (one bit 0 for pm1)
DOMAINS = ("pm1", "01")


def _fail(msg: str) -> ModelFileError:
    return ModelFileError(f"invalid .onebit graph: {msg}")


def conv_out_size(size: int, kernel: int, stride: int, pad_lo: int, pad_hi: int, dilation: int) -> int:
    """Output length of a convolution along one axis (torch's formula)."""
    return (size + pad_lo + pad_hi - dilation * (kernel - 1) - 1) // stride + 1


def pool_out_size(size: int, kernel: int, stride: int, pad: int, ceil_mode: bool) -> int:
    """Output length of a max/avg pool along one axis (torch's formula, ceil_mode included)."""
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:  # the last window must start inside the input
        out -= 1
    return out


# ---- per-op shape rules: (op, input shapes) -> output shapes; raise ModelFileError on nonsense --------

def _chw(shape, op):
    if len(shape) != 3:
        raise _fail(f"op {op['op']!r} ({op.get('name')}) needs a [C, H, W] input, got {shape}")
    return shape


def _conv_shape(op, shapes):
    c, h, w = _chw(shapes[0], op)
    a = op["attrs"]
    kh, kw = a["kernel"]
    (sh, sw), (dh, dw), (pt, pb, pl, pr) = a["stride"], a["dilation"], a["padding"]
    if c != a["in_channels"] or c % a["groups"] or a["out_channels"] % a["groups"]:
        raise _fail(f"op {op.get('name')}: {c} input channels do not fit in_channels={a['in_channels']}, "
                    f"groups={a['groups']}, out_channels={a['out_channels']}")
    ho, wo = conv_out_size(h, kh, sh, pt, pb, dh), conv_out_size(w, kw, sw, pl, pr, dw)
    if ho < 1 or wo < 1:
        raise _fail(f"op {op.get('name')}: output would be empty ({ho}x{wo})")
    return [[a["out_channels"], ho, wo]]


def _linear_shape(op, shapes):
    if len(shapes[0]) != 1 or shapes[0][0] != op["attrs"]["in_features"]:
        raise _fail(f"op {op.get('name')}: input {shapes[0]} is not [in_features={op['attrs']['in_features']}]")
    return [[op["attrs"]["out_features"]]]


def _same_shape(op, shapes):
    if any(s != shapes[0] for s in shapes):
        raise _fail(f"op {op['op']!r} ({op.get('name')}) needs equal input shapes, got {shapes}")
    return [list(shapes[0])]


def _pool_shape(op, shapes):
    c, h, w = _chw(shapes[0], op)
    a = op["attrs"]
    (kh, kw), (sh, sw), (ph, pw) = a["kernel"], a["stride"], a["padding"]
    if 2 * ph > kh or 2 * pw > kw:
        raise _fail(f"op {op.get('name')}: padding {a['padding']} exceeds half the kernel {a['kernel']}")
    ho, wo = pool_out_size(h, kh, sh, ph, a["ceil_mode"]), pool_out_size(w, kw, sw, pw, a["ceil_mode"])
    if ho < 1 or wo < 1:
        raise _fail(f"op {op.get('name')}: output would be empty ({ho}x{wo})")
    return [[c, ho, wo]]


def _concat_shape(op, shapes):
    for s in shapes:
        _chw(s, op)
        if s[1:] != shapes[0][1:]:
            raise _fail(f"op {op.get('name')}: concat needs equal spatial sizes, got {shapes}")
    return [[sum(s[0] for s in shapes), *shapes[0][1:]]]


def _gap_shape(op, shapes):
    return [[_chw(shapes[0], op)[0], 1, 1]]


def _flatten_shape(op, shapes):
    return [[math.prod(shapes[0])]]


# ---- the op table --------------------------------------------------------------------------------------
# kind: (input kinds, output kind) with "any" = float or bits (output follows the input);
# attrs: name -> checker; tensors: role -> (dtype, shape rule(attrs, in shapes) or None = per channel), optional

# Integer attributes are bounded (the engine does int64 arithmetic on them); real ones must fit a float32.
_INT_MAX = 2**31 - 1
_FLT_MAX = float(np.finfo(np.float32).max)
_INT = lambda v: type(v) is int and -_INT_MAX <= v <= _INT_MAX  # noqa: E731
_POS = lambda v: type(v) is int and 1 <= v <= _INT_MAX  # noqa: E731


def _INTS(v, n: int, lo: int) -> bool:  # noqa: N802
    return isinstance(v, list) and len(v) == n and all(type(x) is int and lo <= x <= _INT_MAX for x in v)


_NONNEG2 = lambda v: _INTS(v, 2, 0)  # noqa: E731
_POS2 = lambda v: _INTS(v, 2, 1)  # noqa: E731
_PAD4 = lambda v: _INTS(v, 4, 0)  # noqa: E731
_BOOL = lambda v: type(v) is bool  # noqa: E731
_NUM = lambda v: type(v) in (int, float) and -_FLT_MAX <= v <= _FLT_MAX  # noqa: E731  (NaN fails too)


def _one_of(*valid):
    return lambda v: v in valid


_CONV_ATTRS = {"kernel": _POS2, "stride": _POS2, "padding": _PAD4, "dilation": _POS2, "groups": _POS,
               "in_channels": _POS, "out_channels": _POS}
_POOL_ATTRS = {"kernel": _POS2, "stride": _POS2, "padding": _NONNEG2, "ceil_mode": _BOOL}


def _per_out(op, shapes):
    return [op["attrs"].get("out_channels", op["attrs"].get("out_features"))]


def _per_in(op, shapes):
    return [shapes[0][0]]


def _bweight_shape(op, shapes):
    a = op["attrs"]
    if "kernel" in a:  # [Cout, kh, kw, words per tap]: each tap's Cin/groups bits start a fresh word
        return [a["out_channels"], *a["kernel"], (a["in_channels"] // a["groups"] + 63) // 64]
    return [a["out_features"], (a["in_features"] + 63) // 64]


def _fweight_shape(op, shapes):
    a = op["attrs"]
    if "kernel" in a:
        return [a["out_channels"], a["in_channels"] // a["groups"], *a["kernel"]]
    return [a["out_features"], a["in_features"]]


_TRANSFORM = {"alpha": ("float32", _per_out), "beta": ("float32", _per_out),
              "bn_scale": ("float32", _per_out), "bn_shift": ("float32", _per_out),
              "threshold": ("int32", _per_out), "flip": ("uint8", _per_out)}
_BINARY_ATTRS = {"mode": _one_of("xor", "and"), "output": _one_of("float", "bits"),
                 "out_domain": _one_of(*DOMAINS)}

OPS: dict[str, dict[str, Any]] = {
    "bitpack": {"kinds": (("float",), "bits"), "shape": _same_shape,
                "attrs": {"mode": _one_of("sign", "heaviside")},
                "tensors": {"thresholds": ("float32", _per_in)}, "optional": {"thresholds"}},
    "bconv2d": {"kinds": (("bits",), None), "shape": _conv_shape,
                "attrs": {**_CONV_ATTRS, **_BINARY_ATTRS, "pad": _one_of(*PAD_MODES)},
                "tensors": {"weight": ("uint64", _bweight_shape), **_TRANSFORM},
                "optional": set(_TRANSFORM)},
    "blinear": {"kinds": (("bits",), None), "shape": _linear_shape,
                "attrs": {"in_features": _POS, "out_features": _POS, **_BINARY_ATTRS},
                "tensors": {"weight": ("uint64", _bweight_shape), **_TRANSFORM},
                "optional": set(_TRANSFORM)},
    "conv2d": {"kinds": (("float",), "float"), "shape": _conv_shape, "attrs": dict(_CONV_ATTRS),
               "tensors": {"weight": ("float32", _fweight_shape), "bias": ("float32", _per_out)},
               "optional": {"bias"}},
    "linear": {"kinds": (("float",), "float"), "shape": _linear_shape,
               "attrs": {"in_features": _POS, "out_features": _POS},
               "tensors": {"weight": ("float32", _fweight_shape), "bias": ("float32", _per_out)},
               "optional": {"bias"}},
    "affine": {"kinds": (("float",), "float"), "shape": _same_shape, "attrs": {"fma": _BOOL},
               "tensors": {"scale": ("float32", _per_in), "shift": ("float32", _per_in)}, "optional": set()},
    "relu": {"kinds": (("float",), "float"), "shape": _same_shape, "attrs": {}},
    "hardtanh": {"kinds": (("float",), "float"), "shape": _same_shape, "attrs": {"min": _NUM, "max": _NUM}},
    "prelu": {"kinds": (("float",), "float"), "shape": _same_shape, "attrs": {},
              "tensors": {"slope": ("float32", _per_in)}, "optional": set()},
    "rprelu": {"kinds": (("float",), "float"), "shape": _same_shape, "attrs": {},
               "tensors": {"shift_in": ("float32", _per_in), "slope": ("float32", _per_in),
                           "shift_out": ("float32", _per_in)}, "optional": set()},
    "add": {"kinds": (("float", "float"), "float"), "shape": _same_shape, "attrs": {}},
    "concat": {"kinds": (None, "float"), "shape": _concat_shape, "attrs": {}},
    "maxpool": {"kinds": (("float",), "float"), "shape": _pool_shape, "attrs": dict(_POOL_ATTRS)},
    "bmaxpool": {"kinds": (("bits",), "bits"), "shape": _pool_shape, "attrs": dict(_POOL_ATTRS),
                 "tensors": {"or_mask": ("uint8", _per_in)}, "optional": set()},
    "avgpool": {"kinds": (("float",), "float"), "shape": _pool_shape,
                "attrs": {**_POOL_ATTRS, "count_include_pad": _BOOL}},
    "global_avgpool": {"kinds": (("float",), "float"), "shape": _gap_shape, "attrs": {}},
    "flatten": {"kinds": (("float",), "float"), "shape": _flatten_shape, "attrs": {}},
}


# ---- method ops (adaptive pooling, option-A shortcut, DyBNN, Elastic-Link, SBNN) --------------------------

def _adaptive_shape(op, shapes):
    return [[_chw(shapes[0], op)[0], *op["attrs"]["output_size"]]]


def _subsample_shape(op, shapes):
    c, h, w = _chw(shapes[0], op)
    (sh, sw), co = op["attrs"]["stride"], op["attrs"]["out_channels"]
    if co < c:
        raise _fail(f"op {op.get('name')}: subsample cannot drop channels ({c} -> {co})")
    return [[co, -(-h // sh), -(-w // sw)]]


def _stats_shape(op, shapes):
    return [[shapes[0][0] * (2 if op["attrs"]["statistic"] == "mean_std" else 1)]]


def _vector_input(per: int):
    """Shape rule of an op whose second input is a per-sample [per * C] vector (DyBNN's hyper function)."""
    def rule(op, shapes):
        if len(shapes) != 2 or shapes[1] != [per * shapes[0][0]]:
            raise _fail(f"op {op.get('name')} ({op['op']}): second input must be [{per} x C], got {shapes}")
        return [list(shapes[0])]
    return rule


_EL_PATHS = ("identity", "squeeze_mean", "squeeze_sum", "expand_tile", "expand_interleave")


def _elastic_shape(op, shapes):
    (co, *hw), (ci, *hw2) = shapes
    path = op["attrs"]["path"]
    ok = hw == hw2 and {"identity": ci == co, "squeeze_mean": ci % co == 0, "squeeze_sum": ci % co == 0,
                        "expand_tile": co % ci == 0, "expand_interleave": co % ci == 0}[path]
    if not ok:
        raise _fail(f"op {op.get('name')}: link input {shapes[1]} does not fit output {shapes[0]} with path {path}")
    return [list(shapes[0])]


def _mask_index_shape(op, shapes):
    return [(int(np.prod(_bweight_shape(op, shapes))) + 63) // 64]


# The mask is dense ("mask") or sparse ("mask_index" + "mask_words", fold.nonzero_words); the length of
# mask_words depends on the data (rule None: checked by _check_sb_mask).
_SB_TENSORS = {"mask": ("uint64", _bweight_shape), "mask_index": ("uint64", _mask_index_shape),
               "mask_words": ("uint64", None), "gain": ("float32", _per_out), "beta": ("float32", _per_out),
               "bias": ("float32", _per_out), "bn_scale": ("float32", _per_out), "bn_shift": ("float32", _per_out)}
_SB_OPTIONAL = {"mask", "mask_index", "mask_words", "bn_scale", "bn_shift"}

OPS.update({
    "adaptive_pool": {"kinds": (("float",), "float"), "shape": _adaptive_shape,
                      "attrs": {"output_size": _POS2, "mode": _one_of("max", "avg")}},
    "subsample": {"kinds": (("float",), "float"), "shape": _subsample_shape,
                  "attrs": {"stride": _POS2, "out_channels": _POS}},
    "channel_stats": {"kinds": (("float",), "float"), "shape": _stats_shape,
                      "attrs": {"statistic": _one_of("mean", "mean_std")}},
    "tanh": {"kinds": (("float",), "float"), "shape": _same_shape, "attrs": {}},
    "dybitpack": {"kinds": (("float", "float"), "bits"), "shape": _vector_input(1), "attrs": {}},
    "dyprelu": {"kinds": (("float", "float"), "float"), "shape": _vector_input(2), "attrs": {},
                "tensors": {"slope": ("float32", _per_in)}, "optional": set()},
    "elastic_add": {"kinds": (("float", "float"), "float"), "shape": _elastic_shape,
                    "attrs": {"path": _one_of(*_EL_PATHS)}, "tensors": {"gate": ("float32", _per_in)},
                    "optional": set()},
    "sbconv2d": {"kinds": (("bits",), "float"), "shape": _conv_shape,
                 "attrs": {**_CONV_ATTRS, "pad": _one_of(*PAD_MODES)},
                 "tensors": dict(_SB_TENSORS), "optional": _SB_OPTIONAL},
    "sblinear": {"kinds": (("bits",), "float"), "shape": _linear_shape,
                 "attrs": {"in_features": _POS, "out_features": _POS},
                 "tensors": dict(_SB_TENSORS), "optional": _SB_OPTIONAL},
})

# Int8-quantized float layers (export(..., quantize="int8"); onebit.export.quantize): int8 weights with a
# float scale per output channel, activations quantized per sample when the op runs.
_Q_TENSORS = {"weight": ("int8", _fweight_shape), "weight_scale": ("float32", _per_out), "bias": ("float32", _per_out)}
OPS.update({
    "qconv2d": {"kinds": (("float",), "float"), "shape": _conv_shape, "attrs": dict(_CONV_ATTRS),
                "tensors": dict(_Q_TENSORS), "optional": {"bias"}},
    "qlinear": {"kinds": (("float",), "float"), "shape": _linear_shape,
                "attrs": {"in_features": _POS, "out_features": _POS},
                "tensors": dict(_Q_TENSORS), "optional": {"bias"}},
})


# ---- validation ----------------------------------------------------------------------------------------

def _check_values(values: Any) -> None:
    if not isinstance(values, dict) or not values:
        raise _fail("values must be a non-empty object")
    for name, v in values.items():
        if not isinstance(v, dict) or v.get("kind") not in ("float", "bits"):
            raise _fail(f"value {name!r}: kind must be 'float' or 'bits'")
        shape = v.get("shape")
        if not isinstance(shape, list) or len(shape) not in (1, 3) or not all(_POS(d) for d in shape):
            raise _fail(f"value {name!r}: shape must be [C, H, W] or [F] of positive ints, got {shape!r}")
        if math.prod(shape) > 1 << 31:
            raise _fail(f"value {name!r}: {shape} is too large")
        if v.get("domain", "pm1" if v["kind"] == "float" else None) not in DOMAINS:
            raise _fail(f"value {name!r}: domain must be one of {list(DOMAINS)} (and a bits value needs one)")


def _check_tensors(op: dict, spec: dict, shapes: list, tensors: dict[str, np.ndarray]) -> None:
    refs = op.get("tensors", {})
    if not isinstance(refs, dict):
        raise _fail(f"op {op.get('name')}: tensors must be an object")
    allowed, optional = spec.get("tensors", {}), spec.get("optional", set())
    for role in refs:
        if role not in allowed:
            raise _fail(f"op {op.get('name')} ({op['op']}): unknown tensor role {role!r}; valid: {sorted(allowed)}")
    for role, (dtype, rule) in allowed.items():
        if role not in refs:
            if role not in optional:
                raise _fail(f"op {op.get('name')} ({op['op']}): missing tensor {role!r}")
            continue
        arr = tensors.get(refs[role]) if isinstance(refs[role], str) else None
        if arr is None:
            raise _fail(f"op {op.get('name')}: tensor {refs[role]!r} ({role}) is not in the file")
        want = list(rule(op, shapes)) if rule is not None else [arr.shape[0] if arr.ndim == 1 else -1]
        if arr.dtype != np.dtype(dtype) or list(arr.shape) != want:
            raise _fail(f"op {op.get('name')}: tensor {role} must be {dtype} {want}, got {arr.dtype} {list(arr.shape)}")


def _check_binary_transform(op: dict) -> None:
    refs, a = op.get("tensors", {}), op["attrs"]
    need = {"float": {"alpha", "beta"}, "bits": {"threshold", "flip"}}[a["output"]]
    if not need <= set(refs) or (("bn_scale" in refs) != ("bn_shift" in refs)):
        raise _fail(f"op {op.get('name')}: output {a['output']!r} needs tensors {sorted(need)}"
                    " (and bn_scale with bn_shift or neither)")


def _check_op(i: int, op: Any, values: dict, defined: set, tensors: dict) -> None:
    # Types of every field first: the checks below (and the engine) may then hash, index and compare freely.
    if not isinstance(op, dict) or not isinstance(op.get("op"), str) or op["op"] not in OPS:
        raise _fail(f"op #{i}: unknown op {op.get('op') if isinstance(op, dict) else op!r}; valid: {sorted(OPS)}")
    spec = OPS[op["op"]]
    ins, outs, attrs, refs = op.get("inputs"), op.get("outputs"), op.get("attrs", {}), op.get("tensors", {})
    if not isinstance(op.get("name", ""), str):
        raise _fail(f"op #{i} ({op['op']}): name must be a string, got {op['name']!r}")
    if not isinstance(ins, list) or not ins or not isinstance(outs, list) or len(outs) != 1 or \
            not all(isinstance(n, str) for n in ins + outs):
        raise _fail(f"op #{i} ({op['op']}): needs a non-empty inputs list and exactly one output (value names)")
    if not isinstance(refs, dict) or not all(isinstance(t, str) for t in refs.values()):
        raise _fail(f"op #{i} ({op['op']}): tensors must be an object of role -> tensor name")
    for name in ins:
        if name not in defined:
            raise _fail(f"op #{i} ({op['op']}): input {name!r} is not defined before use")
    if outs[0] not in values or outs[0] in defined:
        raise _fail(f"op #{i} ({op['op']}): output {outs[0]!r} is undeclared or defined twice")
    if not isinstance(attrs, dict) or set(attrs) != set(spec["attrs"]):
        got = sorted(attrs) if isinstance(attrs, dict) else repr(attrs)[:80]
        raise _fail(f"op #{i} ({op['op']}): attrs must be exactly {sorted(spec['attrs'])}, got {got}")
    for key, check in spec["attrs"].items():
        if not check(attrs[key]):
            raise _fail(f"op #{i} ({op['op']}): bad attribute {key}={attrs[key]!r}")
    in_kinds, out_kind = spec["kinds"]
    kinds = [values[n]["kind"] for n in ins]
    if (in_kinds is None and (len(ins) < 2 or any(k != "float" for k in kinds))) or \
            (in_kinds is not None and tuple(kinds) != in_kinds):
        raise _fail(f"op #{i} ({op['op']}): input kinds {kinds} do not match {in_kinds or 'float x >= 2'}")
    out_kind = out_kind or ("bits" if attrs["output"] == "bits" else "float")
    shapes = [values[n]["shape"] for n in ins]
    out = values[outs[0]]
    if out["kind"] != out_kind or [out["shape"]] != spec["shape"](op, shapes):
        raise _fail(f"op #{i} ({op['op']}): output {outs[0]!r} is {out['kind']} {out['shape']}, "
                    f"expected {out_kind} {spec['shape'](op, shapes)[0]}")
    if op["op"] in ("bconv2d", "blinear"):
        _check_binary_transform(op)
        want_in = "pm1" if attrs["mode"] == "xor" else "01"
        if values[ins[0]]["domain"] != want_in or (out_kind == "bits" and out["domain"] != attrs["out_domain"]):
            raise _fail(f"op #{i} ({op['op']}): mode {attrs['mode']} needs a {want_in} input and out_domain to match")
    if op["op"] in ("sbconv2d", "sblinear", "dybitpack"):
        if values[ins[0] if op["op"] != "dybitpack" else outs[0]].get("domain") != "pm1":
            raise _fail(f"op #{i} ({op['op']}): works on pm1 bits only")
        if op["op"] != "dybitpack" and (("bn_scale" in op.get("tensors", {})) != ("bn_shift" in op.get("tensors", {}))):
            raise _fail(f"op #{i} ({op['op']}): bn_scale needs bn_shift")
    if op["op"] == "bitpack" and out["domain"] != ("pm1" if attrs["mode"] == "sign" else "01"):
        raise _fail(f"op #{i} (bitpack): mode {attrs['mode']} gives domain "
                    f"{'pm1' if attrs['mode'] == 'sign' else '01'}, value says {out['domain']}")
    _check_tensors(op, spec, shapes, tensors)
    if op["op"] in ("sbconv2d", "sblinear"):
        _check_sb_mask(i, op, shapes, tensors)
    if op["op"] in ("qconv2d", "qlinear"):
        _check_quantized(i, op, tensors)


def sb_mask_words(op: dict, index: np.ndarray, live: np.ndarray) -> np.ndarray:
    """The dense packed mask ([C_out, kh, kw, words] or [out, words] uint64) of an sbconv2d / sblinear stored
    sparse: bit i of ``index`` says whether word i is nonzero, ``live`` holds those words in order (the
    writer: ``fold.nonzero_words``; their agreement is checked by :func:`validate`)."""
    shape = _bweight_shape(op, None)
    total = int(np.prod(shape))
    present = np.unpackbits(np.ascontiguousarray(index, dtype=np.uint64).view(np.uint8), bitorder="little")[:total]
    out = np.zeros(total, dtype=np.uint64)
    out[present.astype(bool)] = live
    return out.reshape(shape)


def _check_sb_mask(i: int, op: dict, shapes: list, tensors: dict[str, np.ndarray]) -> None:
    """The two-level mask: dense, or index + words that agree (no bits past the mask, one word per set bit),
    and no bits past Cin/groups in any tap or row (they would count in popcount(mask))."""
    refs = op.get("tensors", {})
    if ("mask" in refs) == ("mask_index" in refs) or ("mask_index" in refs) != ("mask_words" in refs):
        raise _fail(f"op #{i} ({op['op']}): needs either tensor 'mask' or both 'mask_index' and 'mask_words'")
    shape = _bweight_shape(op, shapes)
    if "mask" in refs:
        words = tensors[refs["mask"]].reshape(-1)
    else:
        index, live = tensors[refs["mask_index"]], tensors[refs["mask_words"]]
        total = int(np.prod(shape))
        bits = np.unpackbits(index.view(np.uint8), bitorder="little")
        if bits[total:].any() or int(bits.sum()) != live.shape[0]:
            raise _fail(f"op #{i} ({op['op']}): mask_index and mask_words disagree "
                        f"({int(bits[:total].sum())} index bits, {live.shape[0]} words, or bits past {total})")
        words = sb_mask_words(op, index, live).reshape(-1)
    a = op["attrs"]
    used = (a["in_channels"] // a["groups"] if "kernel" in a else a["in_features"]) % 64
    if used and (words.reshape(-1, shape[-1])[:, -1] >> np.uint64(used)).any():
        raise _fail(f"op #{i} ({op['op']}): mask has bits set past the input channels of a tap (padding bits must be 0)")


def _check_quantized(i: int, op: dict, tensors: dict[str, np.ndarray]) -> None:
    """Weights in [-127, 127] (the symmetric int8 range igemm's exactness bound assumes), finite
    non-negative scales, and a dot product short enough to stay exact in int32."""
    refs, a = op["tensors"], op["attrs"]
    w, s = tensors[refs["weight"]], tensors[refs["weight_scale"]]
    if w.size and int(w.min()) < -127:
        raise _fail(f"op #{i} ({op['op']}): weight holds -128; quantized weights must lie in [-127, 127]")
    if not (np.isfinite(s).all() and (s >= 0).all()):
        raise _fail(f"op #{i} ({op['op']}): weight_scale must be finite and >= 0")
    k = w.size // max(w.shape[0], 1)
    if k > _Q_MAX_K:
        raise _fail(f"op #{i} ({op['op']}): {k} inputs per output exceed {_Q_MAX_K} (int32 sums could overflow)")


_Q_MAX_K = 133000  # 133000 * 127 * 127 < 2**31 (csrc/include/onebit/igemm.h kIgemmMaxK)


def validate(model: ModelFile) -> dict:
    """Check ``model.graph`` against the op table and the file's tensors; return the graph.

    Raises :class:`ModelFileError` naming the first problem found.
    """
    g = model.graph
    if not isinstance(g, dict) or set(g) != {"version", "values", "inputs", "outputs", "ops"}:
        raise _fail("graph must be an object with exactly version, values, inputs, outputs, ops")
    if type(g["version"]) is not int or g["version"] != GRAPH_VERSION:
        raise _fail(f"graph version {g['version']!r} is not supported (this onebit reads {GRAPH_VERSION})")
    _check_values(g["values"])
    values = g["values"]
    if not isinstance(g["inputs"], list) or len(g["inputs"]) != 1 or not isinstance(g["inputs"][0], str) or \
            g["inputs"][0] not in values:
        raise _fail("inputs must name exactly one declared value")
    if values[g["inputs"][0]]["kind"] != "float" or len(values[g["inputs"][0]]["shape"]) != 3:
        raise _fail("the input must be a float [C, H, W] value")
    if not isinstance(g["ops"], list) or not g["ops"]:
        raise _fail("ops must be a non-empty list")
    defined = {g["inputs"][0]}
    for i, op in enumerate(g["ops"]):
        _check_op(i, op, values, defined, model.tensors)
        defined.add(op["outputs"][0])
    if not isinstance(g["outputs"], list) or len(g["outputs"]) != 1 or not isinstance(g["outputs"][0], str) or \
            g["outputs"][0] not in defined:
        raise _fail("outputs must name exactly one value produced by an op")
    if values[g["outputs"][0]]["kind"] != "float":
        raise _fail("the output must be a float value")
    return g


Checker = Callable[[Any], bool]
