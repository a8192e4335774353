"""The C++ kernels (``onebit._C``): CPU features, ISA dispatch, bit-packing and binary GEMM.

The extension detects the CPU once; dispatch then picks the best variant the CPU runs.
``ONEBIT_ISA=portable|avx2|avx512`` in the environment (read at import) or :func:`use_isa`
forces a level; forcing a level the CPU lacks is an error, never a silent fallback.
"""

from __future__ import annotations

import contextlib
import operator
import os
from typing import Iterator

import numpy as np
import torch

from . import _blas  # noqa: F401  (loads OpenBLAS for _C first)
from . import _C
from .bitpack import MODES, words_for

__all__ = [
    "BGEMM_MODES", "KERNEL_OPS", "acc2bits", "acc2float", "active_isa", "available_isas", "bconv2d", "bgemm",
    "bgemm_pack", "bit_thresholds", "bmaxpool", "dispatch_summary", "dispatched_variant", "igemm",
    "kernel_variants", "pack", "pack_conv_weight", "sbgemm", "use_isa",
]

# bgemm dot-product modes (values shared with csrc/include/onebit/bgemm.h and the model file).
BGEMM_MODES = {"xor": 0, "and": 1}


#: True only in the test-only build whose AVX-512 kernels run on SIMDe's emulation
#: (scripts/test_avx512_emulated.sh): right answers, meaningless speed.
AVX512_EMULATED: bool = bool(_C.avx512_emulated)


def available_isas() -> list[str]:
    """ISA levels this CPU runs, lowest first, e.g. ``['portable', 'avx2', 'avx512']``.

    In the test-only emulated build (:data:`AVX512_EMULATED`), ``'avx512'`` is listed wherever AVX2 is.
    """
    return list(_C.available_isas())


def active_isa() -> str:
    """The highest ISA level dispatch may use now."""
    return _C.active_isa()


KERNEL_OPS = ("bitpack", "bgemm", "bconv2d", "sbgemm", "igemm", "acc2bits", "acc2float", "bmaxpool")


def dispatched_variant(op: str) -> str:
    """The variant of ``op`` that dispatch runs now (the best one of the active ISA level)."""
    return _C.dispatched_variant(op)


def dispatch_summary() -> str:
    """One line: the active ISA and the variant dispatch runs for each kernel op (``onebit bench``)."""
    emulated = " [AVX-512 EMULATED: test build]" if AVX512_EMULATED else ""
    ops = ", ".join(f"{op} {dispatched_variant(op)}" for op in KERNEL_OPS)
    return f"ISA {active_isa()} of {available_isas()}{emulated}; kernels: {ops}"


def kernel_variants(op: str) -> list[str]:
    """All compiled variants of ``op`` (``'reference'`` first), runnable here or not."""
    return [name for name, _isa, _dispatch in _C.kernel_variants(op)]


def runnable_variants(op: str) -> list[str]:
    """Variants of ``op`` this CPU can run, including the reference."""
    isas = set(available_isas())
    return [name for name, isa, _dispatch in _C.kernel_variants(op) if isa in isas]


def selected_variants(op: str, names: str = "", *, reference: bool = False) -> list[str]:
    """The variants of ``op`` a benchmark runs: the comma-separated ``names`` if given, else every one
    this CPU runs (the slow reference only with ``reference=True``)."""
    if names:
        return [v for v in names.split(",") if v]
    return [v for v in runnable_variants(op) if v != "reference" or reference]


def _force(name: str | None) -> None:
    if name is None:
        _C.clear_forced_isa()
        return
    if name not in ("portable", "avx2", "avx512"):
        raise ValueError(f"unknown ISA {name!r}; valid: ['portable', 'avx2', 'avx512']")
    if name not in available_isas():
        raise RuntimeError(f"ISA {name!r} was forced but this CPU only supports {available_isas()}")
    _C.force_isa(name)


@contextlib.contextmanager
def use_isa(name: str | None) -> Iterator[None]:
    """Force dispatch to ``name`` inside the block (``None``: best available), then restore."""
    previous = os.environ.get("ONEBIT_ISA") or None
    _force(name)
    try:
        yield
    finally:
        _force(previous)


def pack(
    x: torch.Tensor | np.ndarray,
    *,
    mode: str = "sign",
    thresholds: torch.Tensor | np.ndarray | None = None,
    variant: str | None = None,
    groups: int = 1,
) -> torch.Tensor:
    """Pack the last dimension of ``x`` into ``uint64`` words with the C++ kernels.

    Same contract and bytes as :func:`onebit.bitpack.pack`. Integer inputs are converted to
    float32, which preserves every sign and every comparison with 0. ``variant`` names a kernel
    (see :func:`kernel_variants`); ``None`` dispatches. ``groups > 1`` packs each of ``groups``
    equal channel groups from a word boundary (``groups * ceil(C / groups / 64)`` words), the
    input layout of a grouped :func:`bconv2d`.
    """
    if mode not in MODES:
        raise ValueError(f"unknown pack mode {mode!r}; valid: {sorted(MODES)}")
    xt = torch.as_tensor(x)
    if xt.device.type != "cpu":
        raise ValueError(f"onebit kernels run on CPU tensors, got device {xt.device}")
    if xt.dim() == 0:
        raise ValueError("pack needs at least one dimension (the channels, packed innermost)")
    if xt.is_complex() or xt.dtype == torch.bool:
        raise TypeError(f"pack takes real float or integer tensors, got {xt.dtype}")
    channels = xt.shape[-1]
    rows = xt.reshape(-1, channels).to(torch.float32).contiguous()
    t = None
    if thresholds is not None:
        t = torch.as_tensor(thresholds).to(torch.float32).contiguous()
        if t.shape != (channels,):
            raise ValueError(f"thresholds must have shape ({channels},), got {tuple(t.shape)}")
    groups = operator.index(groups)
    if groups < 1 or channels % groups:
        raise ValueError(f"groups={groups} must divide the {channels} channels")
    words = groups * words_for(channels // groups)
    out = torch.empty((rows.shape[0], words), dtype=torch.uint64)
    _C.bitpack(rows, out, t, MODES[mode], variant or "", groups)
    return out.reshape(*xt.shape[:-1], words)


def _cpu_rows(x: torch.Tensor | np.ndarray, name: str, dtypes: tuple, holds: str, dims: str) -> torch.Tensor:
    """x as a contiguous 2-D CPU tensor of one of ``dtypes``; clear errors otherwise."""
    t = torch.as_tensor(x)
    if t.device.type != "cpu":
        raise ValueError(f"onebit kernels run on CPU tensors, got {name} on device {t.device}")
    if t.dtype not in dtypes:
        raise TypeError(f"{name} must {holds}, got {t.dtype}")
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D{dims}, got shape {tuple(t.shape)}")
    return t.contiguous()


def _packed_rows(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    words = _cpu_rows(x, name, (torch.uint64, torch.int64), "hold packed uint64 (or int64) words", " (rows, words)")
    return words.view(torch.uint64)


def bgemm(
    a: torch.Tensor | np.ndarray,
    b: torch.Tensor | np.ndarray,
    k: int,
    *,
    mode: str = "xor",
    variant: str | None = None,
    packed_b: np.ndarray | None = None,
) -> torch.Tensor:
    """Binary GEMM on packed rows: ``out[m, n] = dot(a[m], b[n])`` over ``k`` bits, as ``torch.int32``.

    ``a`` is ``(M, ceil(k/64))`` packed activations, ``b`` is ``(N, ceil(k/64))`` packed weights
    (uint64 words, e.g. from :func:`pack` or :func:`onebit.bitpack.pack`; padding bits must be 0).

    * ``mode="xor"``: +-1 x +-1, both packed with ``mode="sign"``: ``k - 2 popcount(a XOR b)``.
    * ``mode="and"``: {0,1} activations (packed with ``mode="heaviside"``) x +-1 weights
      (``mode="sign"``): ``popcount(a) - 2 popcount(a AND b)``.

    The identities are derived in ``csrc/include/onebit/bgemm.h``. ``variant`` names a kernel
    (see :func:`kernel_variants`); ``None`` dispatches. ``packed_b``: :func:`bgemm_pack` of this ``b``
    for the variant that runs (it then skips repacking B; trusted to match ``b``).
    """
    if mode not in BGEMM_MODES:
        raise ValueError(f"unknown bgemm mode {mode!r}; valid: {sorted(BGEMM_MODES)}")
    k = operator.index(k)
    at, bt = _packed_rows(a, "a"), _packed_rows(b, "b")
    out = torch.empty((at.shape[0], bt.shape[0]), dtype=torch.int32)
    # numpy views (zero-copy) cross the binding in ~1 us; torch tensors go through DLPack (~7 us).
    _C.bgemm(at.numpy(), bt.numpy(), out.numpy(), k, BGEMM_MODES[mode], variant or "", packed_b)
    return out


def bgemm_pack(b: torch.Tensor | np.ndarray, k: int, *, variant: str | None = None) -> np.ndarray | None:
    """``b`` packed once for ``variant`` (``None``: the dispatched one), to pass to :func:`bgemm` as
    ``packed_b``; ``None`` when that variant reads B as it is. A 64-byte aligned ``uint8`` array."""
    bt = _packed_rows(b, "b")
    name = variant or ""
    size = _C.bgemm_packed_bytes(bt.shape[0], operator.index(k), name)
    if size == 0:
        return None
    raw = np.empty(size + 64, dtype=np.uint8)
    start = -raw.ctypes.data % 64
    out = raw[start:start + size]
    _C.bgemm_pack(bt.numpy(), operator.index(k), name, out)
    return out


def sbgemm(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, k: int, *,
           variant: str | None = None) -> torch.Tensor:
    """Block-sparse binary GEMM: ``out[m, n] = sum_i x_i b_i`` over ``k`` bits, as ``torch.int32``.

    ``a``: ``(M, ceil(k/64))`` packed +-1 activations (``mode="sign"``: bit 1 = -1); ``b``: ``(N,
    ceil(k/64))`` packed {0,1} mask rows (``mode="heaviside"``: bit 1 = 1), SBNN's sparse weights.
    Computed as ``popcount(b) - 2 popcount(a AND b)`` over the words that are nonzero in some row of
    each block of 8 rows of ``b`` (``csrc/include/onebit/sbgemm.h``): zero words cost nothing.
    """
    k = operator.index(k)
    at, bt = _packed_rows(a, "a"), _packed_rows(b, "b")
    out = torch.empty((at.shape[0], bt.shape[0]), dtype=torch.int32)
    _C.sbgemm(at.numpy(), bt.numpy(), out.numpy(), k, variant or "")
    return out


def igemm(a: torch.Tensor | np.ndarray, w: torch.Tensor | np.ndarray, *, variant: str | None = None) -> torch.Tensor:
    """Integer GEMM ``out[m, n] = sum_{i < k} a[m, i] * w[n, i]``, exact, as ``torch.int32``.

    ``a``: ``(M, K)`` ``int16`` activations, ``w``: ``(N, K)`` ``int8`` weights, every value in
    ``[-127, 127]`` (symmetric int8 quantization; -128 is rejected). ``|out| <= K * 127**2 < 2**31``
    for ``1 <= K <= 133000``, so the int32 result never wraps. The kernels multiply-add pairs of K
    (``vpmaddwd``: ``a0 * w0 + a1 * w1`` per 32-bit lane), so ``a`` is padded here to an even number of
    columns with a zero column; ``w`` is packed into 8-row panels per call
    (``csrc/include/onebit/igemm.h``). ``variant`` names a kernel (see :func:`kernel_variants`);
    ``None`` dispatches.
    """
    at = _cpu_rows(a, "a", (torch.int16,), "be torch.int16", "")
    wt = _cpu_rows(w, "w", (torch.int8,), "be torch.int8", "")
    if at.shape[1] != wt.shape[1]:
        raise ValueError(f"a and w must have the same K (columns), got {at.shape[1]} and {wt.shape[1]}")
    if at.shape[1] % 2:
        at = torch.nn.functional.pad(at, (0, 1))
    out = torch.empty((at.shape[0], wt.shape[0]), dtype=torch.int32)
    _C.igemm(at.numpy(), wt.numpy(), out.numpy(), variant or "")
    return out


from ._layer_kernels import acc2bits, acc2float, bconv2d, bit_thresholds, bmaxpool, pack_conv_weight  # noqa: E402

_env_isa = os.environ.get("ONEBIT_ISA") or None
if _env_isa is not None:
    _force(_env_isa)
