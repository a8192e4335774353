"""Integer GEMM (igemm.h): int16 activations x int8 weights, exact int32 sums.

Oracle: torch int64 matmul of the same integer values. The reference (which reads B back from the
panel layout) equals the oracle; every variant equals the reference bit for bit, over K at the
pair, block-of-vectors and cache edges up to 9216, row counts at the 4- and 6-row tile edges and
column counts at the 8-column block and 16-column tile edges. Extreme values (all +-127, at the
largest K) show that nothing saturates or wraps. The AVX-512 VNNI variant routes fewer than 8 rows
and K > 66311 to the AVX2 one, so its own path gets shapes of its own (8+ rows, 16-column groups,
its K limit); on CPUs without AVX-512 these run under scripts/test_avx512_emulated.sh.
"""

import numpy as np
import pytest
import torch

from onebit import _C, kernels

VARIANTS = kernels.runnable_variants("igemm")
FAST_VARIANTS = [v for v in VARIANTS if v != "reference"]
EDGE_K = [1, 2, 3, 63, 64, 65, 127, 128, 129, 147, 511, 512, 513, 4608, 9216]
ROWS = (1, 2, 3, 4, 5, 6, 7, 13)  # every remainder of the 4- and 6-row tiles
COLS = (1, 7, 8, 9, 16, 17, 33)
MAX_K = 133000  # kIgemmMaxK


def operands(m, n, k, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(-127, 128, (m, k), generator=g, dtype=torch.int16)
    w = torch.randint(-127, 128, (n, k), generator=g, dtype=torch.int8)
    return a, w


def oracle(a, w):
    return (a.long() @ w.long().T).to(torch.int32)


def test_variant_list():
    assert VARIANTS[0] == "reference"
    assert "4x8__portable" in VARIANTS
    assert ("6x16__avx2" in VARIANTS) == ("avx2" in kernels.available_isas())
    assert ("6x64__avx512_vnni" in VARIANTS) == ("avx512" in kernels.available_isas())


VNNI_MAX_K = 66311  # igemm_avx512_vnni.cpp: larger K goes to the AVX2 kernel


@pytest.mark.parametrize("k", [1, 3, 4, 5, 63, 64, 65, 147, 513, 4608, 9216])
def test_many_rows_at_group_and_tile_edges(k):
    # 8+ rows (the VNNI path), columns at its 16-column groups and 64-column tiles, every row tail.
    for m in (8, 12, 13, 19):
        for n in (15, 16, 17, 48, 63, 64, 65, 100, 129):
            a, w = operands(m, n, k, seed=k * 7 + m * 300 + n)
            expected = oracle(a, w)
            for variant in FAST_VARIANTS:
                assert torch.equal(kernels.igemm(a, w, variant=variant), expected), (variant, m, n, k)


@pytest.mark.parametrize("k", EDGE_K)
def test_reference_matches_torch_and_variants_match_reference(k):
    big = k > 1024  # the naive reference costs m * n * k: few rows there
    for m in (1, 2, 7) if big else ROWS:
        for n in (1, 9, 17, 33) if big else COLS:
            a, w = operands(m, n, k, seed=k * 1000 + m * 50 + n)
            expected = kernels.igemm(a, w, variant="reference")
            assert torch.equal(expected, oracle(a, w)), (m, n)
            for variant in FAST_VARIANTS:
                assert torch.equal(kernels.igemm(a, w, variant=variant), expected), (variant, m, n)


def test_tall_and_wide_shapes_and_dispatch():
    # Many 6-row tiles, several 16-column tiles, a partial last block; and the batch-1 head shape.
    for m, n, k in ((61, 50, 147), (40, 72, 27), (1, 1000, 512), (3, 100, 1001)):
        a, w = operands(m, n, k, seed=m + n + k)
        expected = oracle(a, w)
        for variant in FAST_VARIANTS + [None]:
            assert torch.equal(kernels.igemm(a, w, variant=variant), expected), (variant, m, n, k)


@pytest.mark.parametrize("k", [1, 2, 9216, VNNI_MAX_K, VNNI_MAX_K + 1, MAX_K])
@pytest.mark.parametrize("m", [3, 9])
def test_extreme_values_do_not_saturate(k, m):
    # |C| = k * 127^2 at the largest K is within 2^31 - 1 by a hair; int16 saturation or an int32
    # wrap anywhere would show (for VNNI: sum (a + 128) * w = k * 255 * 127 at its K limit). Rows of
    # A: all +127, all -127, alternating, then repeated; rows of B likewise.
    n = 9
    a = torch.full((m, k), 127, dtype=torch.int16)
    a[1::3] = -127
    a[2::3, 1::2] = -127
    w = torch.full((n, k), 127, dtype=torch.int8)
    w[1::2] = -127
    w[8, ::2] = -127
    expected = oracle(a, w)
    assert expected.abs().max().item() == k * 127 * 127
    variants = VARIANTS if k <= 9216 else FAST_VARIANTS
    for variant in variants:
        assert torch.equal(kernels.igemm(a, w, variant=variant), expected), variant


def test_numpy_inputs_and_zero_sized():
    a, w = operands(3, 5, 10, seed=1)
    assert torch.equal(kernels.igemm(a.numpy(), w.numpy()), oracle(a, w))
    assert kernels.igemm(torch.zeros(0, 4, dtype=torch.int16), torch.zeros(5, 4, dtype=torch.int8)).shape == (0, 5)
    assert kernels.igemm(torch.zeros(2, 4, dtype=torch.int16), torch.zeros(0, 4, dtype=torch.int8)).shape == (2, 0)


def test_pack_layout_is_the_header_formula():
    # panels[(q * pairs + p) * 16 + 2 * j + e] = B[8q + j][2p + e], 0 past n or k (igemm.h).
    n, k = 13, 7
    _, w = operands(1, n, k, seed=3)
    panels = np.full(2 * 4 * 16, 99, dtype=np.int8)
    _C.igemm_pack(w.numpy(), panels)
    padded = np.zeros((16, 8), dtype=np.int8)
    padded[:n, :k] = w.numpy()
    expected = padded.reshape(2, 8, 4, 2).transpose(0, 2, 1, 3).reshape(-1)
    assert np.array_equal(panels, expected)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("m", [7, 13])
def test_strided_rows_and_only_columns_below_n_are_written(variant, m):
    # a as rows of a wider array (lda > kp), out as rows of a wider array (ldc > n): the kernel reads
    # lda, writes every (r, j < n) and nothing else.
    n, k = 17, 33
    a, w = operands(m, n, k, seed=9)
    a_wide = np.full((m, 40), 5, dtype=np.int16)
    a_wide[:, :k], a_wide[:, k] = a.numpy(), 0
    out_wide = np.full((m, 24), -7, dtype=np.int32)
    assert _C.igemm(a_wide[:, : k + 1], w.numpy(), out_wide[:, :n], variant) == variant
    assert np.array_equal(out_wide[:, :n], oracle(a, w).numpy())
    assert (out_wide[:, n:] == -7).all()


def test_bad_inputs_raise_clear_errors():
    a, w = operands(2, 3, 4, seed=0)
    with pytest.raises(TypeError, match="a must be torch.int16"):
        kernels.igemm(a.float(), w)
    with pytest.raises(TypeError, match="a must be torch.int16"):
        kernels.igemm(a.int(), w)
    with pytest.raises(TypeError, match="w must be torch.int8"):
        kernels.igemm(a, w.short())
    with pytest.raises(ValueError, match="same K"):
        kernels.igemm(a, w[:, :3])
    with pytest.raises(ValueError, match="2-D"):
        kernels.igemm(a[0], w)
    with pytest.raises(ValueError, match="unknown kernel variant"):
        kernels.igemm(a, w, variant="nope")
    with pytest.raises(ValueError, match=r"k must be in \[1, 133000\]"):
        kernels.igemm(torch.zeros(1, 0, dtype=torch.int16), torch.zeros(1, 0, dtype=torch.int8))
    for bad_a, bad_w, culprit in ((128, 0, r"a\[1, 2\] = 128"), (-128, 0, r"a\[1, 2\] = -128"),
                                  (0, -128, r"w\[1, 2\] = -128")):
        a2, w2 = a.clone(), w.clone()
        a2[1, 2] = bad_a or a2[1, 2]
        w2[1, 2] = bad_w or w2[1, 2]
        with pytest.raises(ValueError, match=culprit + r" is outside \[-127, 127\]"):
            kernels.igemm(a2, w2)


def test_binding_checks_its_contract():
    a, w = operands(2, 3, 5, seed=0)
    a6 = np.zeros((2, 6), dtype=np.int16)
    a6[:, :5] = a.numpy()
    out = np.empty((2, 3), dtype=np.int32)
    with pytest.raises(ValueError, match="kp = 6 columns for k = 5"):
        _C.igemm(a.numpy(), w.numpy(), out)
    a6[1, 5] = 1
    with pytest.raises(ValueError, match="nonzero pad column"):
        _C.igemm(a6, w.numpy(), out)
    a6[1, 5] = 0
    with pytest.raises(ValueError, match=r"out must have shape \(m, n\) = \(2, 3\)"):
        _C.igemm(a6, w.numpy(), np.empty((3, 2), dtype=np.int32))
    with pytest.raises(TypeError):  # out is never converted: a converted copy would stay unread
        _C.igemm(a6, w.numpy(), np.empty((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="contiguous columns"):
        _C.igemm(np.zeros((2, 12), dtype=np.int16)[:, ::2], w.numpy(), out)
    with pytest.raises(ValueError, match="w must be C-contiguous"):
        _C.igemm(a6, np.zeros((3, 10), dtype=np.int8)[:, :5], out)
    with pytest.raises(ValueError, match="panels must have"):
        _C.igemm_packed(a6, np.zeros(5, dtype=np.int8), 3, 5, out)
    assert _C.igemm(a6, w.numpy(), out) in FAST_VARIANTS
    assert np.array_equal(out, oracle(a, w).numpy())


def test_dispatch_follows_the_forced_isa():
    a, w = np.zeros((1, 2), dtype=np.int16), np.zeros((1, 2), dtype=np.int8)
    out = np.empty((1, 1), dtype=np.int32)
    with kernels.use_isa("portable"):
        assert _C.igemm(a, w, out) == "4x8__portable"
    if "avx2" in kernels.available_isas():
        with kernels.use_isa("avx2"):
            assert _C.igemm(a, w, out) == "6x16__avx2"
    if "avx512" in kernels.available_isas():
        with kernels.use_isa("avx512"):
            assert _C.igemm(a, w, out) == "6x64__avx512_vnni"
