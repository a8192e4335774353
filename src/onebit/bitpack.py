"""The bit convention of onebit in pure PyTorch (the Python twin of ``csrc/include/onebit/bitpack.h``).

* +-1 values: bit 1 <=> -1, bit 0 <=> +1, so ``sign(0) = +1`` packs to bit 0.
* {0,1} values: bit 1 <=> 1.
* Words are little-endian ``uint64``; element ``c`` of the last dimension lives in word ``c // 64``,
  bit ``c % 64``. Padding bits of the last word are 0.

With a threshold ``t`` (per channel, default 0): mode ``"sign"`` sets the bit where ``x < t``
(``sign(x - t) = -1``); mode ``"heaviside"`` sets it where ``x > t`` (``H(x - t) = 1``). NaN packs to 0.

These functions are the oracle the C++ packers are tested against (bit-identical bytes).
"""

from __future__ import annotations

import torch

__all__ = ["MODES", "WORD_BITS", "pack", "unpack", "words_for"]

WORD_BITS = 64
MODES = {"sign": 0, "heaviside": 1}

# 1 << j for j = 0..63 as int64; 1 << 63 is -2**63, which is exactly bit 63 in two's complement.
_BIT_VALUES = torch.ones(WORD_BITS, dtype=torch.int64) << torch.arange(WORD_BITS, dtype=torch.int64)


def words_for(channels: int) -> int:
    """Number of 64-bit words that hold ``channels`` bits."""
    return (channels + WORD_BITS - 1) // WORD_BITS


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown pack mode {mode!r}; valid: {sorted(MODES)}")


def pack(x: torch.Tensor, *, mode: str = "sign", thresholds: torch.Tensor | None = None) -> torch.Tensor:
    """Pack the last dimension of ``x`` into ``uint64`` words: shape ``(..., C) -> (..., ceil(C/64))``."""
    _check_mode(mode)
    if x.dim() == 0:
        raise ValueError("pack needs at least one dimension (the channels, packed innermost)")
    t = 0.0 if thresholds is None else thresholds.to(x.dtype)
    if thresholds is not None and thresholds.shape != (x.shape[-1],):
        raise ValueError(f"thresholds must have shape ({x.shape[-1]},), got {tuple(thresholds.shape)}")
    bits = (x < t) if mode == "sign" else (x > t)
    channels = x.shape[-1]
    pad = words_for(channels) * WORD_BITS - channels
    bits = torch.nn.functional.pad(bits.to(torch.int64), (0, pad))
    bits = bits.reshape(*x.shape[:-1], -1, WORD_BITS)
    return (bits * _BIT_VALUES).sum(dim=-1).view(torch.uint64)


def unpack(words: torch.Tensor, channels: int, *, mode: str = "sign", dtype=torch.float32) -> torch.Tensor:
    """Inverse of :func:`pack`: ``(..., W) -> (..., channels)`` of +-1 (``"sign"``) or {0,1} values."""
    _check_mode(mode)
    if words.dtype not in (torch.uint64, torch.int64):
        raise TypeError(f"packed words must be uint64 (or int64), got {words.dtype}")
    if words.shape[-1] != words_for(channels):
        raise ValueError(f"{channels} channels need {words_for(channels)} words, got {words.shape[-1]}")
    w = words.view(torch.int64).unsqueeze(-1)
    bits = (w >> torch.arange(WORD_BITS, dtype=torch.int64)) & 1
    bits = bits.reshape(*words.shape[:-1], -1)[..., :channels]
    if mode == "sign":
        return (1 - 2 * bits).to(dtype)
    return bits.to(dtype)
