"""Binary GEMM: every compiled variant equals the reference bit for bit, and the reference equals
torch float matmul on the +-1 / {0,1} values the packed bits stand for (bgemm.h)."""

import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from onebit import _C, bitpack, kernels

VARIANTS = kernels.runnable_variants("bgemm")
FAST_VARIANTS = [v for v in VARIANTS if v != "reference"]
EDGE_K = [1, 63, 64, 65, 127, 128, 129, 511, 512, 513, 1000]
# mode -> how the activations are packed; weights are always +-1 ("sign").
ACTIVATION_PACKING = {"xor": "sign", "and": "heaviside"}


def tile_of(variant):
    """(rows of A, rows of B) of a tiled variant: its name starts with '<rows>x<cols>__'."""
    match = re.match(r"^(\d+)x(\d+)__", variant)
    assert match, f"bgemm variant {variant!r} does not state its tile"
    return int(match.group(1)), int(match.group(2))


def quantized(x, packing):
    """The values packed bits stand for (bitpack.h): sign -> +-1 (sign(0) = +1), heaviside -> {0,1}."""
    if packing == "sign":
        return torch.where(x < 0, -1.0, 1.0)
    return (x > 0).to(torch.float32)


def random_operands(m, n, k, mode, seed):
    """Packed a (m rows) and b (n rows) plus the float matmul oracle (exact: |dot| <= k < 2**24)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g)
    w = torch.randn(n, k, generator=g)
    x[0, : k // 3] = 0.0  # exact zeros: sign(0) = +1 -> bit 0, H(0) = 0 -> bit 0
    w[-1, k // 2 :] = 0.0
    packing = ACTIVATION_PACKING[mode]
    a = bitpack.pack(x, mode=packing)
    b = bitpack.pack(w, mode="sign")
    expected = (quantized(x, packing) @ quantized(w, "sign").T).to(torch.int32)
    return a, b, expected


def test_variant_list():
    assert VARIANTS[0] == "reference"
    assert "4x4__portable" in VARIANTS
    table = {name: (isa, dispatch) for name, isa, dispatch in _C.kernel_variants("bgemm")}
    assert table["reference"] == ("portable", False)
    for variant in FAST_VARIANTS:
        tile_of(variant)
        assert table[variant][1], variant


def test_all_isas_of_this_cpu_are_compiled():
    # Every ISA this CPU has must have a runnable bgemm variant: never a silent fallback.
    isas = {isa for name, isa, dispatch in _C.kernel_variants("bgemm") if dispatch and name in VARIANTS}
    assert isas == set(kernels.available_isas())


@pytest.mark.parametrize("mode", ["xor", "and"])
@pytest.mark.parametrize("k", EDGE_K)
def test_reference_matches_float_matmul(k, mode):
    a, b, expected = random_operands(7, 9, k, mode, seed=k)
    got = kernels.bgemm(a, b, k, mode=mode, variant="reference")
    assert got.dtype == torch.int32 and got.shape == (7, 9)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("mode", ["xor", "and"])
@pytest.mark.parametrize("k", EDGE_K)
@pytest.mark.parametrize("variant", FAST_VARIANTS)
def test_variant_matches_reference_at_tile_edges(variant, k, mode):
    rows, cols = tile_of(variant)
    # One pair of operands; every M x N in [1, tile + 1]^2 is a prefix of it. With tile + 1 there
    # is a full tile and an edge tile in both directions.
    a, b, expected = random_operands(rows + 1, cols + 1, k, mode, seed=1000 + k)
    assert torch.equal(kernels.bgemm(a, b, k, mode=mode, variant="reference"), expected)
    for m in range(1, rows + 2):
        for n in range(1, cols + 2):
            got = kernels.bgemm(a[:m], b[:n], k, mode=mode, variant=variant)
            assert torch.equal(got, expected[:m, :n]), (variant, k, mode, m, n)


@pytest.mark.parametrize("mode", ["xor", "and"])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("words", [100, 300, 1025, 1537])
def test_extreme_popcounts(variant, mode, words):
    # All bits set or clear: the largest counts any accumulator sees (byte counters of 3x8__avx2_nvec
    # flush every 31 words, every 124 in its 1-2 row path; the 16-bit counters of 3x64__avx2_ntab are
    # widened every 768 words: 1025 and 1537 words give counts past 65535), and results of +-k exactly.
    # 4, 3, 2, 1 rows: a full 3-row tile and an edge tile, and the one- and two-row path.
    k = 64 * words
    ones = torch.full((3, words), -1, dtype=torch.int64).view(torch.uint64)
    zeros = torch.zeros((2, words), dtype=torch.uint64)
    rows = torch.cat([ones[:1], ones[:2], zeros[:1]])  # rows: ones, ones, ones, zeros
    if mode == "xor":  # -1 . -1 = +1, -1 . +1 = -1, +1 . -1 = -1, +1 . +1 = +1
        expected = [[k, -k, -k]] * 3 + [[-k, k, k]]
    else:  # 1 x (-1) = -1, 1 x (+1) = +1, 0 x anything = 0
        expected = [[-k, k, k]] * 3 + [[0, 0, 0]]
    for m in (4, 3, 2, 1):
        got = kernels.bgemm(rows[-m:], torch.cat([ones[:1], zeros]), k, mode=mode, variant=variant)
        assert got.tolist() == expected[-m:], m


@pytest.mark.parametrize("mode", ["xor", "and"])
@pytest.mark.parametrize("variant", FAST_VARIANTS)
def test_counter_flush_boundaries(variant, mode):
    """K around the counter flush lengths: 3x64__avx2_ntab flushes byte counters every 3 words and
    widens its 16-bit counters every 768 words; 3x8__avx2_nvec flushes every 31 words. Rows past the
    largest tile height; columns: 2 32-column panels + 2 (3x64__avx2_ntab passes those 2 to
    3x8__avx2_nvec), 2 panels + a part-panel of 26."""
    for words in (2, 3, 4, 6, 7, 30, 31, 32, 62, 767, 768, 769, 1537):
        for k in sorted({64 * words - 1, 64 * words, 64 * words + 1}):
            a, b, expected = random_operands(7, 90, k, mode, seed=words * 7 + k % 3)
            for n in (66, 90):
                got = kernels.bgemm(a, b[:n], k, mode=mode, variant=variant)
                assert torch.equal(got, expected[:, :n]), (k, mode, n)


@pytest.mark.parametrize("mode", ["xor", "and"])
@pytest.mark.parametrize("variant", FAST_VARIANTS)
def test_one_and_two_rows_at_long_k(variant, mode):
    """A batch-1 / batch-2 binary linear layer's shape: K past several flushes of byte counters, odd N."""
    for k in (7937, 9216, 9217):
        a, b, expected = random_operands(2, 13, k, mode, seed=k)
        for m in (1, 2):
            assert torch.equal(kernels.bgemm(a[:m], b, k, mode=mode, variant=variant), expected[:m]), (k, m)


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 20), n=st.integers(1, 40), k=st.integers(1, 1200),
       mode=st.sampled_from(["xor", "and"]), seed=st.integers(0, 2**31 - 1))
def test_property_all_variants_identical(m, n, k, mode, seed):
    a, b, expected = random_operands(m, n, k, mode, seed)
    for variant in VARIANTS:
        assert torch.equal(kernels.bgemm(a, b, k, mode=mode, variant=variant), expected), variant


ISA_ORDER = ["portable", "avx2", "avx512"]


def test_dispatch_picks_last_variant_of_best_isa_and_use_isa_forces():
    table = [(name, isa) for name, isa, dispatch in _C.kernel_variants("bgemm") if dispatch]
    a, b, expected = random_operands(11, 13, 300, "xor", seed=5)
    out = torch.empty(11, 13, dtype=torch.int32)
    for isa in kernels.available_isas():
        with kernels.use_isa(isa):
            allowed = [name for name, i in table if ISA_ORDER.index(i) <= ISA_ORDER.index(isa)]
            ran = _C.bgemm(a.numpy(), b.numpy(), out.numpy(), 300, 0)
            assert ran == allowed[-1]
            assert torch.equal(out, expected)
            assert torch.equal(kernels.bgemm(a, b, 300), expected)


def test_inputs_numpy_int64_and_non_contiguous():
    a, b, expected = random_operands(6, 5, 200, "and", seed=9)
    got = kernels.bgemm(a.numpy(), b.view(torch.int64).numpy(), 200, mode="and")
    assert torch.equal(got, expected)
    wide = torch.zeros(12, a.shape[1], dtype=torch.uint64)
    wide[::2] = a
    assert not wide[::2].is_contiguous()
    assert torch.equal(kernels.bgemm(wide[::2], b, 200, mode="and"), expected)


def test_empty_rows():
    b = torch.zeros(3, 2, dtype=torch.uint64)
    for variant in VARIANTS:
        assert kernels.bgemm(torch.zeros(0, 2, dtype=torch.uint64), b, 100, variant=variant).shape == (0, 3)
        assert kernels.bgemm(b, torch.zeros(0, 2, dtype=torch.uint64), 100, variant=variant).shape == (3, 0)


def test_bad_inputs_raise_clear_errors():
    a = torch.zeros(4, 2, dtype=torch.uint64)
    b = torch.zeros(3, 2, dtype=torch.uint64)
    for k in (0, -5):
        with pytest.raises(ValueError, match="k must be"):
            kernels.bgemm(a, b, k)
    with pytest.raises(ValueError, match="k must be"):
        kernels.bgemm(a, b, 2**31)
    with pytest.raises(ValueError, match="words per row"):
        kernels.bgemm(a, b, 129)  # needs 3 words
    with pytest.raises(ValueError, match="words per row"):
        kernels.bgemm(a, b, 64)  # needs 1 word
    with pytest.raises(ValueError, match="same number of words"):
        kernels.bgemm(a, torch.zeros(3, 3, dtype=torch.uint64), 100)
    with pytest.raises(ValueError, match="valid"):
        kernels.bgemm(a, b, 100, mode="xnor")
    with pytest.raises(ValueError, match="unknown kernel variant"):
        kernels.bgemm(a, b, 100, variant="avx1024")
    with pytest.raises(TypeError, match="uint64"):
        kernels.bgemm(a.to(torch.float32), b, 100)
    with pytest.raises(ValueError, match="2-D"):
        kernels.bgemm(a[0], b, 100)
    with pytest.raises(TypeError):
        kernels.bgemm(a, b, 100.0)
    # Nonzero padding bits past k break the identities: rejected, never silently wrong.
    bad = b.clone()
    bad[2, 1] = torch.tensor(1 << 40, dtype=torch.int64).view(torch.uint64)
    with pytest.raises(ValueError, match="b row 2 has nonzero padding bits"):
        kernels.bgemm(a, bad, 100)
    assert kernels.bgemm(a, bad, 128).shape == (4, 3)  # the same bit is inside k = 128


def test_binding_checks_output_and_mode():
    a = np.zeros((4, 2), dtype=np.uint64)
    b = np.zeros((3, 2), dtype=np.uint64)
    with pytest.raises(ValueError, match="out must have shape"):
        _C.bgemm(a, b, np.zeros((3, 4), dtype=np.int32), 100, 0)
    with pytest.raises(ValueError, match="mode"):
        _C.bgemm(a, b, np.zeros((4, 3), dtype=np.int32), 100, 2)
    with pytest.raises(TypeError):  # wrong output dtype: nanobind rejects the call
        _C.bgemm(a, b, np.zeros((4, 3), dtype=np.int64), 100, 0)
    with pytest.raises(ValueError, match="unknown op"):
        _C.kernel_variants("bconv")


# Operands that end right before a PROT_NONE page: a kernel that touches a word past its rows
# (a K tail loaded without a mask, a panel row past n, an output column past n) faults. Runs in a
# subprocess so that a fault fails this test instead of killing the session.
GUARD_PAGE_SCRIPT = r"""
import ctypes, mmap
import numpy as np
from onebit import _C, kernels

libc = ctypes.CDLL(None, use_errno=True)
PAGE = mmap.PAGESIZE
keep = []

def guarded(shape, dtype):
    count = int(np.prod(shape))
    nbytes = count * np.dtype(dtype).itemsize
    size = -(-nbytes // PAGE) * PAGE
    buf = mmap.mmap(-1, size + PAGE)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    assert libc.mprotect(ctypes.c_void_p(addr + size), PAGE, 0) == 0  # PROT_NONE after the data
    keep.append(buf)
    return np.frombuffer(buf, dtype=dtype, count=count, offset=size - nbytes).reshape(shape)

rng = np.random.default_rng(0)
for k in (1, 63, 65, 129, 513, 1000):
    kw = -(-k // 64)
    for m, n in ((1, 1), (6, 9), (7, 33), (2, 41)):
        for mode in (0, 1):
            src = [rng.integers(0, 2**64, size=(r, kw), dtype=np.uint64) for r in (m, n)]
            if k % 64:
                for x in src:
                    x[:, -1] &= np.uint64((1 << (k % 64)) - 1)
            a, b = guarded((m, kw), np.uint64), guarded((n, kw), np.uint64)
            a[:], b[:] = src
            ref = np.empty((m, n), dtype=np.int32)
            _C.bgemm(src[0], src[1], ref, k, mode, "reference")
            for variant in kernels.runnable_variants("bgemm"):
                out = guarded((m, n), np.int32)
                _C.bgemm(a, b, out, k, mode, variant)
                assert (out == ref).all(), (variant, k, m, n, mode)
print("ok")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mprotect through libc: Linux only")
def test_no_access_past_the_operands():
    result = subprocess.run([sys.executable, "-c", GUARD_PAGE_SCRIPT], capture_output=True, text=True)
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"
    assert result.stdout.strip() == "ok"


RESNET18_SHAPES = [(3136, 64, 576), (784, 128, 1152), (196, 256, 2304), (49, 512, 4608)]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["xor", "and"])
@pytest.mark.parametrize("shape", RESNET18_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_resnet18_shapes(shape, mode):
    m, n, k = shape
    a, b, expected = random_operands(m, n, k, mode, seed=m)
    for variant in VARIANTS:
        assert torch.equal(kernels.bgemm(a, b, k, mode=mode, variant=variant), expected), variant


PACKING_VARIANTS = [v for v in FAST_VARIANTS if _C.bgemm_packed_bytes(1, 64, v) > 0]


def test_which_variants_take_a_packed_b():
    # The ones that repack B on every call; on this CPU at least the AVX2 ntab kernel when AVX2 runs.
    assert ("3x64__avx2_ntab" in PACKING_VARIANTS) == ("avx2" in kernels.available_isas())
    assert ("5x32__avx512_nvec" in PACKING_VARIANTS) == ("avx512" in kernels.available_isas())
    for variant in ("4x4__portable", "3x8__avx2_nvec"):
        if variant in FAST_VARIANTS:
            assert kernels.bgemm_pack(np.zeros((3, 1), np.uint64), 64, variant=variant) is None


@pytest.mark.parametrize("variant", PACKING_VARIANTS)
@pytest.mark.parametrize("mode", ["xor", "and"])
def test_packed_b_equals_repacking_on_every_call(variant, mode):
    # B packed once (as the engine does at load) gives the products of the per-call repack, bit for
    # bit, over K at word edges, N at the 8- / 32-column panel edges and the ntab kernel's routing of a
    # short last panel, and row counts below and above its 3-row minimum.
    for k in (1, 63, 64, 65, 129, 513, 4608):
        for n in (1, 8, 16, 31, 32, 40, 48, 64, 80, 96, 100):
            for m in (1, 2, 3, 7):
                a, b, expected = random_operands(m, n, k, mode, seed=k * 31 + n * 7 + m)
                packed = kernels.bgemm_pack(b, k, variant=variant)
                assert packed is not None and packed.ctypes.data % 64 == 0
                got = kernels.bgemm(a, b, k, mode=mode, variant=variant, packed_b=packed)
                assert torch.equal(got, expected), (variant, mode, k, n, m)


def test_packed_b_is_checked():
    if not PACKING_VARIANTS:
        pytest.skip("no variant here takes a packed B")
    variant = PACKING_VARIANTS[0]
    a, b, _ = random_operands(4, 40, 100, "xor", seed=0)
    packed = kernels.bgemm_pack(b, 100, variant=variant)
    with pytest.raises(ValueError, match="packed B must have"):
        kernels.bgemm(a, b, 100, variant=variant, packed_b=packed[:-64])
    raw = np.empty(packed.size + 64, np.uint8)
    off = (-raw.ctypes.data % 64) + 1
    with pytest.raises(ValueError, match="64-byte aligned"):
        kernels.bgemm(a, b, 100, variant=variant, packed_b=raw[off:off + packed.size])
    with pytest.raises(ValueError, match="takes no packed B"):
        kernels.bgemm(a, b, 100, variant="4x4__portable", packed_b=packed)
