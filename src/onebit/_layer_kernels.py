"""Python face of the binary layer kernels of ``onebit._C`` (re-exported by :mod:`onebit.kernels`).

Layouts and bit conventions are defined in ``csrc/include/onebit/bconv2d.h``,
``output_transform.h`` and ``bmaxpool.h``:

* activations: NHWC, channels packed innermost, ``(N, H, W, groups * ceil(C / groups / 64))``
  ``uint64`` words (:func:`onebit.kernels.pack` with ``groups``);
* conv weights: ``(C_out, KH, KW, ceil(C_in / groups / 64))`` words, each tap word-aligned
  (:func:`pack_conv_weight`).

All kernels are single-threaded; an engine splits the output pixels of a layer over threads with
``pixel_range`` (each call uses thread-local scratch).
"""

from __future__ import annotations

import operator

import numpy as np
import torch

from . import _blas  # noqa: F401  (loads OpenBLAS for _C first)
from . import _C
from .bitpack import MODES, words_for

_BCONV_MODES = {"xor": 0, "and": 1, "mask": 2}
_PAD_VALUES = {"xor": (1, 0, -1), "and": (0, 1), "mask": (1, 0, -1)}


def _pair(v, name: str) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair, got {v!r}")
        return operator.index(v[0]), operator.index(v[1])
    v = operator.index(v)
    return v, v


def _words(x, name: str, ndim: int) -> np.ndarray:
    t = torch.as_tensor(x)
    if t.device.type != "cpu":
        raise ValueError(f"onebit kernels run on CPU tensors, got {name} on device {t.device}")
    if t.dtype not in (torch.uint64, torch.int64):
        raise TypeError(f"{name} must hold packed uint64 (or int64) words, got {t.dtype}")
    if t.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(t.shape)}")
    return t.contiguous().view(torch.uint64).numpy()


def _vec(v, dtype, name: str) -> np.ndarray | None:
    if v is None:
        return None
    t = torch.as_tensor(v)
    if t.dim() != 1:
        raise ValueError(f"{name} must be 1-D (one value per channel), got shape {tuple(t.shape)}")
    if dtype == torch.int32 and (t.is_floating_point() or t.is_complex()):
        raise TypeError(f"{name} must be integer (see bit_thresholds), got {t.dtype}")
    return t.to(dtype).contiguous().numpy()


def pack_conv_weight(weight: torch.Tensor) -> torch.Tensor:
    """Pack a conv weight ``(C_out, C_in / groups, KH, KW)`` by sign into ``(C_out, KH, KW, words)``.

    Bit 1 <=> weight < 0 (sign(0) = +1), each tap's ``C_in / groups`` channels starting at a word
    boundary (the weight's second dimension is already per group, as in ``nn.Conv2d``).
    """
    w = torch.as_tensor(weight)
    if w.dim() != 4:
        raise ValueError(f"conv weight must be 4-D (C_out, C_in/groups, KH, KW), got shape {tuple(w.shape)}")
    from .kernels import pack

    return pack(w.permute(0, 2, 3, 1).contiguous(), mode="sign")


def bconv2d(
    x,
    weight,
    in_channels: int,
    *,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
    mode: str = "xor",
    pad_value: int = 1,
    multiplier=None,
    bias=None,
    threshold=None,
    flip=None,
    out_groups: int = 1,
    pixel_range: tuple[int, int] | None = None,
    out: torch.Tensor | None = None,
    variant: str | None = None,
) -> torch.Tensor:
    """Binary conv2d on packed NHWC ``x`` with packed ``weight``; NHWC output.

    * ``mode="xor"``: +-1 activations x +-1 weights; ``pad_value`` +1 (bits 0), 0 (padded taps add
      nothing: torch's zero padding) or -1. ``mode="and"``: {0,1} activations; ``pad_value`` 0 or 1.
      ``mode="mask"``: +-1 activations x {0,1} weights (SBNN's mask, packed with bit 1 = weight 1,
      e.g. ``pack(m.permute(0, 2, 3, 1), mode="heaviside")``), run block-sparse (sbgemm.h): words of
      zeros in the weight are skipped; ``pad_value`` as for ``"xor"``.
    * Output: ``int32`` dot products ``(N, OH, OW, C_out)``; with ``multiplier`` (and ``bias``)
      ``float32`` ``acc * multiplier + bias``; with ``threshold`` (and ``flip``) packed bits
      ``(N, OH, OW, out_groups * ceil(C_out / out_groups / 64))`` with
      ``bit = flip ? acc > threshold : acc < threshold`` (see :func:`bit_thresholds`).
    * ``pixel_range=(begin, end)`` computes only those flat output pixels (into ``out``).
    """
    if mode not in _BCONV_MODES:
        raise ValueError(f"unknown bconv2d mode {mode!r}; valid: {sorted(_BCONV_MODES)}")
    if pad_value not in _PAD_VALUES[mode]:
        raise ValueError(f"pad_value={pad_value!r} is not valid for mode {mode!r}; valid: {_PAD_VALUES[mode]}")
    xa, wa = _words(x, "x", 4), _words(weight, "weight", 4)
    kh, kw = wa.shape[1], wa.shape[2]
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
    oh = (xa.shape[1] + 2 * ph - dh * (kh - 1) - 1) // max(sh, 1) + 1
    ow = (xa.shape[2] + 2 * pw - dw * (kw - 1) - 1) // max(sw, 1) + 1
    c_out = wa.shape[0]
    if threshold is not None:
        shape, dtype = (xa.shape[0], oh, ow, operator.index(out_groups) * words_for(c_out // max(out_groups, 1))), torch.uint64
    elif multiplier is not None:
        shape, dtype = (xa.shape[0], oh, ow, c_out), torch.float32
    else:
        shape, dtype = (xa.shape[0], oh, ow, c_out), torch.int32
    if out is None:
        out = torch.empty(tuple(max(d, 0) for d in shape), dtype=dtype)
    _C.bconv2d(xa, wa, out.numpy(), operator.index(in_channels), (sh, sw), (ph, pw), (dh, dw), operator.index(groups),
               _BCONV_MODES[mode], operator.index(pad_value), _vec(multiplier, torch.float32, "multiplier"),
               _vec(bias, torch.float32, "bias"), _vec(threshold, torch.int32, "threshold"),
               _vec(flip, torch.uint8, "flip"), operator.index(out_groups), pixel_range, variant or "")
    return out


def acc2bits(acc, threshold, flip=None, *, groups: int = 1, variant: str | None = None) -> torch.Tensor:
    """int32 ``(..., C)`` -> packed bits ``(..., groups * ceil(C / groups / 64))``:
    ``bit = flip ? acc > threshold : acc < threshold`` per channel (output_transform.h)."""
    a = torch.as_tensor(acc)
    if a.dtype != torch.int32:
        raise TypeError(f"acc must be int32, got {a.dtype}")
    c = a.shape[-1]
    rows = a.reshape(-1, c).contiguous()
    groups = operator.index(groups)
    if groups < 1 or c % groups:
        raise ValueError(f"groups={groups} must divide the {c} channels")
    out = torch.empty(rows.shape[0], groups * words_for(c // groups), dtype=torch.uint64)
    _C.acc2bits(rows.numpy(), out.numpy(), _vec(threshold, torch.int32, "threshold"), _vec(flip, torch.uint8, "flip"),
                groups, variant or "")
    return out.reshape(*a.shape[:-1], out.shape[-1])


def acc2float(acc, multiplier, bias=None, *, variant: str | None = None) -> torch.Tensor:
    """int32 ``(..., C)`` -> float32 ``acc * multiplier + bias`` (two roundings, as torch computes it).
    ``variant`` names a kernel (``kernel_variants("acc2float")``); ``None`` dispatches."""
    a = torch.as_tensor(acc)
    if a.dtype != torch.int32:
        raise TypeError(f"acc must be int32, got {a.dtype}")
    rows = a.reshape(-1, a.shape[-1]).contiguous()
    out = torch.empty(rows.shape, dtype=torch.float32)
    _C.acc2float(rows.numpy(), out.numpy(), _vec(multiplier, torch.float32, "multiplier"),
                 _vec(bias, torch.float32, "bias"), variant or "")
    return out.reshape(a.shape)


def bmaxpool(x, kernel_size, stride=None, padding=0, dilation=1, *, mode: str = "sign", and_mask=None,
             variant: str | None = None) -> torch.Tensor:
    """Max-pool packed NHWC bits ``(N, H, W, words)``: AND of bits for +-1 (``mode="sign"``), OR for
    {0,1} (``mode="heaviside"``); padding never wins (bmaxpool.h). ``stride`` defaults to the kernel.
    ``and_mask`` (``words`` uint64 words) chooses per channel instead: bit set = AND, clear = OR."""
    if mode not in MODES:
        raise ValueError(f"unknown bmaxpool mode {mode!r}; valid: {sorted(MODES)}")
    xa = _words(x, "x", 4)
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None else _pair(stride, "stride")
    p, d = _pair(padding, "padding"), _pair(dilation, "dilation")
    size = [(xa.shape[1 + i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // max(s[i], 1) + 1 for i in range(2)]
    out = torch.empty(xa.shape[0], max(size[0], 0), max(size[1], 0), xa.shape[3], dtype=torch.uint64)
    mask = None if and_mask is None else _words(torch.as_tensor(and_mask).reshape(1, -1), "and_mask", 2)[0]
    _C.bmaxpool(xa, out.numpy(), k, s, p, d, MODES[mode], mask, variant or "")
    return out


def bit_thresholds(multiplier, bias=None, *, out: str = "sign") -> tuple[torch.Tensor, torch.Tensor]:
    """Integer ``(threshold, flip)`` such that, for every int32 ``acc``, the bit of
    ``z = float32(acc) * multiplier + bias`` (float32, two roundings) is
    ``flip ? acc > threshold : acc < threshold``: ``out="sign"`` packs ``z < 0`` (sign(0) = +1),
    ``out="heaviside"`` packs ``z > 0``. Derivation in ``csrc/include/onebit/output_transform.h``:
    start from ceil / floor of ``t = -bias / multiplier``, then step to where the float bit changes
    (z is monotone in acc, so the boundary is unique)."""
    if out not in MODES:
        raise ValueError(f"unknown output mode {out!r}; valid: {sorted(MODES)}")
    m = torch.as_tensor(multiplier, dtype=torch.float32)
    b = torch.zeros_like(m) if bias is None else torch.as_tensor(bias, dtype=torch.float32)
    lo, hi = -(2**31), 2**31 - 1

    def bit(acc: torch.Tensor) -> torch.Tensor:
        z = acc.to(torch.float32) * m + b
        return z < 0 if out == "sign" else z > 0

    # The bit is 1 for small acc when (sign, m > 0) or (heaviside, m < 0): then bit = acc < thr.
    below = (m > 0) if out == "sign" else (m < 0)
    t = (-b.double() / torch.where(m == 0, torch.ones_like(m), m).double()).clamp(lo - 1.0, hi + 1.0)
    thr = torch.where(below, torch.ceil(t), torch.floor(t)).clamp(lo, hi).to(torch.int64)
    for _ in range(64):  # a few steps at most: float32 rounding moves the boundary by ulps of acc
        # below: thr = min{acc: bit(acc) = 0}; else thr = max{acc: bit(acc) = 0}.
        step_down = torch.where(below, bit(thr - 1) == 0, bit(thr + 1) == 0) & (thr > lo) & (thr < hi)
        step_up = bit(thr) == 1  # thr itself must give bit 0 in both directions
        if not (step_down.any() or step_up.any()):
            break
        move = torch.where(below, torch.where(step_up, 1, torch.where(step_down, -1, 0)),
                           torch.where(step_up, -1, torch.where(step_down, 1, 0)))
        thr = (thr + move).clamp(lo, hi)
    constant = m == 0  # bit is the constant (b < 0) or (b > 0): acc < INT32_MAX always, < INT32_MIN never
    const_bit = bit(torch.zeros_like(thr))
    thr = torch.where(constant, torch.where(const_bit, torch.full_like(thr, hi), torch.full_like(thr, lo)), thr)
    flip = (~below & ~constant).to(torch.uint8)
    return thr.to(torch.int32), flip
