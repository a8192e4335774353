"""Folding: binary weights into bits + scales, BatchNorm into affine terms, and post-processing chains
followed by a binarizer into integer thresholds.

Threshold folding, derived. A binary layer computes an integer dot product d in [-K, K] per output
(K = weights per output channel). Eval-mode PyTorch then maps it through a chain of per-channel float
ops and the next layer's binarizer:  bit_c(d) = Q(f_c(alpha_c d + b_c)).  Instead of solving
f_c(alpha_c d + b_c) = 0 symbolically (which loses PyTorch's float rounding, flips with negative BN
gamma, and breaks on constant channels), we *evaluate the chain in torch* on every candidate integer
d = -K..K for every channel and read off where the bit changes. If, per channel, the bits are a step
in d, the layer outputs bits directly:
    bit = (d >= T_c) XOR flip_c
(flip_c = 1 when the bit falls with d, e.g. negative gamma; T_c = -K with flip 0 / 1 encodes a
channel that is always 1 / 0). The value alpha_c d + b_c is what the layer computes when its weights
are +-alpha_c (exactly so for alpha = 1, which is also PyTorch's integer-valued conv).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .. import bitpack

__all__ = ["FoldError", "batchnorm_affine", "binary_weight", "chain_bits", "step_threshold", "two_level_weight"]


class FoldError(ValueError):
    """A pattern cannot be folded; the caller falls back (or reports the module)."""


@torch.no_grad()
def binary_weight(layer: nn.Module, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The eval-mode quantized weight of ``layer`` as (bits (int64 0/1, weight shape), alpha (C_out,)).

    Requires q(W)[o] in {-alpha_o, +alpha_o} (any sign-based weight quantizer: BNN, XNOR, Si-BNN, BNN+
    with a negative scale too). Bit 1 = -1 (the convention).
    """
    wq = layer.quantized_weight().detach().to(torch.float32)
    flat = wq.reshape(wq.shape[0], -1)
    alpha = flat.abs().amax(dim=1)
    if not torch.equal(flat.abs(), alpha[:, None].expand_as(flat)) or bool((alpha == 0).any()):
        raise FoldError(f"module {name!r}: quantized weights are not +-alpha per output channel "
                        "(two-level {alpha, beta} domain weights and zero weights cannot be packed yet); "
                        "use a sign-based weight quantizer")
    return (wq < 0).to(torch.int64), alpha



@torch.no_grad()
def two_level_weight(layer: nn.Module, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weights with at most two values per output channel (SBNN's {alpha, beta} domain) as
    (mask (int64 0/1, weight shape), gain (C_out,), base (C_out,)) with w = base + gain * mask.

    ``base``: 0 when it is one of the channel's values (SBNN's sparse domain: the engine then needs no
    box-sum term for the layer, and pruned weights are zero words it skips); otherwise the more frequent
    value (ties: the one of smaller magnitude), so the mask marks the rarer value and the engine's work
    and the file's sparse encoding follow the sparsity (SBNN's expected-connections penalty makes the
    1-bits rare). ``gain`` = other - base.
    """
    wq = layer.quantized_weight().detach().to(torch.float32)
    flat = wq.reshape(wq.shape[0], -1)
    lo, hi = flat.amin(dim=1), flat.amax(dim=1)
    if not bool(((flat == lo[:, None]) | (flat == hi[:, None])).all()):
        raise FoldError(f"module {name!r}: quantized weights take more than two values per output channel; "
                        "use a sign-based or two-level ({alpha, beta}) weight quantizer (a magnitude-pruned "
                        "+-alpha BNN is ternary: to deploy pruning, prune SBNN's sparse domain {0, alpha}, "
                        "domain_weight with beta='zero')")
    n_hi, n_lo = (flat == hi[:, None]).sum(dim=1), (flat == lo[:, None]).sum(dim=1)
    pick_hi = (n_hi > n_lo) | ((n_hi == n_lo) & (hi.abs() < lo.abs()))
    pick_hi = torch.where(lo == 0, False, torch.where(hi == 0, True, pick_hi))
    base, other = torch.where(pick_hi, hi, lo), torch.where(pick_hi, lo, hi)
    mask = (wq != base.reshape(-1, *[1] * (wq.dim() - 1))).to(torch.int64)
    return mask, other - base, base


def pack_conv_weight(bits: torch.Tensor) -> np.ndarray:
    """(C_out, C_in/g, kh, kw) 0/1 bits -> uint64 (C_out, kh, kw, words): each tap's channels start a word."""
    taps = bits.permute(0, 2, 3, 1).contiguous()   # channels innermost, as activations are packed
    return bitpack.pack(1.0 - 2.0 * taps.to(torch.float32)).numpy()


def pack_linear_weight(bits: torch.Tensor) -> np.ndarray:
    return bitpack.pack(1.0 - 2.0 * bits.to(torch.float32)).numpy()


def nonzero_words(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A packed mask as (index, words): bit i of ``index`` (uint64, little-endian words) is set when
    word i of ``packed.ravel()`` is nonzero, and ``words`` are those words in order.

    The sparse encoding of an SBNN mask in the file (``mask_index`` / ``mask_words``; read back by
    ``graph.sb_mask_words``): 1 bit per 64
    weights plus the live words, against 1 bit per weight dense. It pays when more than 1/64 of the
    words are zero — structured sparsity (whole 64-channel words of a tap zero); an unstructured mask
    at 75 % sparsity has almost no zero words (0.75^64) and stays dense.
    """
    flat = np.ascontiguousarray(packed, dtype=np.uint64).ravel()
    live = flat != 0
    pad = (-live.size) % 64
    bits = np.packbits(np.concatenate([live, np.zeros(pad, dtype=bool)]), bitorder="little")
    return bits.view(np.uint64).copy(), flat[live].copy()


@torch.no_grad()
def batchnorm_affine(bn: nn.Module, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval BatchNorm as y = fma(x, scale, shift), bit-exact with PyTorch's CPU kernel.

    PyTorch computes scale = rsqrt(var + eps) * gamma and shift = fma(-mean, scale, beta), then
    fma(x, scale, shift) (checked against ``bn(x)`` in the tests). The fma of the shift is evaluated in
    float64 (exact product, one rounding of the sum) before rounding to float32.
    """
    if not isinstance(bn, nn.modules.batchnorm._BatchNorm) or bn.running_mean is None:
        raise FoldError(f"module {name!r}: BatchNorm without running statistics cannot be folded "
                        "(use track_running_stats=True)")
    var, mean = bn.running_var.to(torch.float32), bn.running_mean.to(torch.float32)
    gamma = bn.weight.to(torch.float32) if bn.weight is not None else torch.ones_like(var)
    beta = bn.bias.to(torch.float32) if bn.bias is not None else torch.zeros_like(var)
    scale = torch.rsqrt(var + bn.eps) * gamma
    shift = (beta.double() - mean.double() * scale.double()).to(torch.float32)
    return scale, shift


def step_threshold(bits: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """bits: (C, 2K+1) bool for d = -K..K. Returns (T int32, flip uint8) with bit = (d >= T) XOR flip.

    Raises FoldError if some channel is not a single step (a non-monotone chain).
    """
    b = bits.to(torch.int64)
    changes = (b[:, 1:] != b[:, :-1]).sum(dim=1)
    if bool((changes > 1).any()):
        bad = int(torch.nonzero(changes > 1)[0, 0])
        raise FoldError(f"channel {bad}: the binarized output is not monotone in the dot product")
    flip = b[:, 0].clone()                                  # bit at d = -K: 1 means the step falls
    first = torch.argmax((b != flip[:, None]).to(torch.int64), dim=1)  # first index that differs
    const = changes == 0                                    # bit = (d >= -K) XOR flip = NOT flip for all d
    t = torch.where(const, torch.full_like(first, -k), first - k)
    flip = torch.where(const, 1 - b[:, 0], flip)
    return t.to(torch.int32).numpy(), flip.to(torch.uint8).numpy()


@torch.no_grad()
def chain_bits(values: torch.Tensor, chain, quantizer: nn.Module, domain: str) -> torch.Tensor:
    """Run ``values`` (1, C, L, 1) or (L, C) through the chain callables and the binarizer; bit per entry.

    Returns bool with the same layout as ``values``: for pm1, bit = q < 0; for 01, bit = q > 0.
    """
    x = values
    for fn in chain:
        x = fn(x)
    q = quantizer(x)
    return (q < 0) if domain == "pm1" else (q > 0)
