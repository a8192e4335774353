"""Reference bitwise dot products in the onebit bit convention (pure torch, the oracle for kernels).

Convention (DESIGN.md section 3, :mod:`onebit.bitpack`): for +-1 values bit 1 <=> -1 and bit 0 <=> +1;
for {0,1} values bit 1 <=> 1. Operands are packed along their last dimension into little-endian
64-bit words (``bitpack.pack``); padding bits are 0 and, in every identity below, contribute nothing
(a padding position has a = 0 / b = 0 in both operands, so XOR, AND and popcount ignore it; only the
true length n enters the formulas).

Derivations [D], for one pair of length-n vectors with bits A_i, B_i:

* +-1 x +-1 (BNN, XNOR-Net, Bi-Real, ReActNet, DyBNN, BNN+, Elastic-Link): a_i w_i = +1 when the bits
  agree and -1 when they differ, so  a . w = (n - d) - d = n - 2 popcount(A XOR B),  d = popcount(A XOR B).
* {0,1} activations x +-1 weights (Si-BNN): w_i = 1 - 2 B_i, so
  a . w = sum_i A_i (1 - 2 B_i) = popcount(A) - 2 popcount(A AND B). popcount(A) depends only on the
  input patch and is shared by all output channels. Zero padding (A = 0) is exact.
* +-1 activations x {0,1} weights (SBNN sparse form): a_i = 1 - 2 A_i, so
  sum_{i: M_i = 1} a_i = popcount(M) - 2 popcount(A AND M).
* {alpha, beta} weights (SBNN), w = beta + (alpha - beta) M:
  a . w = beta sum_i a_i + (alpha - beta) sum_{M_i=1} a_i, with sum_i a_i = n - 2 popcount(A).
"""

from __future__ import annotations

import torch

from .bitpack import WORD_BITS

__all__ = ["dot_01_pm1", "dot_domain", "dot_pm1", "dot_pm1_01", "popcount"]

_SHIFTS = torch.arange(WORD_BITS, dtype=torch.int64)


def _words(t: torch.Tensor) -> torch.Tensor:
    if t.dtype not in (torch.uint64, torch.int64):
        raise TypeError(f"packed words must be uint64 (or int64), got {t.dtype}")
    return t.view(torch.int64)


def popcount(words: torch.Tensor) -> torch.Tensor:
    """Number of set bits, summed over the last (word) dimension: (..., W) -> (...) int64.

    Bit j of a word is (word >> j) & 1; the arithmetic shift of int64 copies the sign bit into the
    high bits, which the mask discards.
    """
    w = _words(words)
    return ((w.unsqueeze(-1) >> _SHIFTS) & 1).sum(dim=(-2, -1))


def dot_pm1(a: torch.Tensor, w: torch.Tensor, n: int) -> torch.Tensor:
    """+-1 x +-1: n - 2 popcount(A XOR W) for packed operands of true length ``n`` (broadcasting)."""
    return n - 2 * popcount(torch.bitwise_xor(_words(a), _words(w)))


def dot_01_pm1(a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """{0,1} activations x +-1 weights (Si-BNN): popcount(A) - 2 popcount(A AND W)."""
    aw = _words(a)
    return popcount(aw) - 2 * popcount(torch.bitwise_and(aw, _words(w)))


def dot_pm1_01(a: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """+-1 activations x {0,1} weights: sum of a_i over M_i = 1 = popcount(M) - 2 popcount(A AND M)."""
    mw = _words(m)
    return popcount(mw) - 2 * popcount(torch.bitwise_and(_words(a), mw))


def dot_domain(a: torch.Tensor, m: torch.Tensor, n: int, alpha: float, beta: float) -> torch.Tensor:
    """+-1 activations x {alpha, beta} weights (w = beta + (alpha - beta) M), as a float tensor."""
    total = n - 2 * popcount(a)
    return beta * total.to(torch.float64) + (alpha - beta) * dot_pm1_01(a, m).to(torch.float64)
