"""Int8 quantization of a model file's float layers: ``export(model, x, quantize="int8")``.

A BNN's binary body is cheap; what stays float (the stem conv, the classifier, float shortcuts) then
dominates its latency (BENCHMARKS.md: the 7x7 stem is a third of Bi-Real-18 on one core), and a batch-1
classifier is bound by reading its float weights. This pass turns every float ``conv2d`` / ``linear``
op of a lowered graph into ``qconv2d`` / ``qlinear``: int8 weights (4x fewer bytes) that the engine
multiplies with int8 activations in exact integer arithmetic (csrc/include/onebit/igemm.h).

The scheme (symmetric, the same as PyTorch's ``per_channel_symmetric`` weights with dynamic activations):

* weights, per output channel c, at export:
  ``s_w[c] = max_i |W[c, i]| / 127`` and ``W_q[c, i] = clamp(round(W[c, i] / s_w[c]), -127, 127)``
  (``s_w[c] = 0`` and ``W_q[c] = 0`` for an all-zero channel);
* activations, per sample, when the op runs (no calibration set needed; the scale follows the input):
  ``a = max |x|``, ``inv = 127 / a`` (float32), ``q = round_half_even(clamp(x * inv, -127, 127))``,
  ``s_x = a / 127`` (``q = 0`` and ``s_x = 0`` when ``a = 0``);
* output: ``y[c] = float32(sum_i q_i W_q[c, i]) * (s_x * s_w[c]) + bias[c]`` (float32, two roundings).

Zero padding stays exact (0 quantizes to 0), and the integer sum is exact, so the engine and the
reference executor (:mod:`onebit.export.reference`) agree bit for bit; against the float model the
error is that of 8-bit rounding (each product off by at most half a step of each factor).
"""

from __future__ import annotations

import numpy as np

__all__ = ["QUANTIZE_SCHEMES", "check_scheme", "quantize_weights", "quantize_graph"]

QUANTIZE_SCHEMES = ("int8",)
_OPS = {"conv2d": "qconv2d", "linear": "qlinear"}


def check_scheme(scheme: str | None) -> None:
    """None (float layers stay float32) or one of :data:`QUANTIZE_SCHEMES`; ValueError otherwise."""
    if scheme is not None and scheme not in QUANTIZE_SCHEMES:
        raise ValueError(f"quantize={scheme!r} is not supported; valid: None, {', '.join(map(repr, QUANTIZE_SCHEMES))}")


def quantize_weights(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 weights (out, ...) -> (int8 weights of the same shape, float32 per-output scale)."""
    w = np.asarray(w, dtype=np.float32)
    flat = w.reshape(w.shape[0], -1)
    amax = np.abs(flat).max(axis=1) if flat.shape[1] else np.zeros(w.shape[0], np.float32)
    if not np.isfinite(amax).all():
        raise ValueError("weights must be finite to be quantized")
    scale = (amax / np.float32(127)).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1))[:, None]
    q = np.clip(np.rint(flat / safe), -127, 127).astype(np.int8)
    return q.reshape(w.shape), scale


def quantize_graph(graph: dict, tensors: dict[str, np.ndarray], scheme: str) -> tuple[dict, dict[str, np.ndarray]]:
    """A copy of a lowered graph whose float conv2d / linear ops are int8 (``scheme="int8"``)."""
    check_scheme(scheme)
    tensors = dict(tensors)
    ops = []
    for op in graph["ops"]:
        if op["op"] not in _OPS:
            ops.append(op)
            continue
        refs = dict(op["tensors"])
        wname = refs["weight"]
        q, scale = quantize_weights(tensors.pop(wname))
        tensors[wname] = q
        sname = wname + "_scale"
        while sname in tensors:
            sname += "_"
        refs["weight_scale"] = sname
        tensors[sname] = scale
        ops.append({**op, "op": _OPS[op["op"]], "tensors": refs})
    return {**graph, "ops": ops}, tensors
