"""Binary conv2d: the reference equals torch float conv2d on the +-1 / {0,1} values the bits stand
for (with +1 / -1 / 0 padding applied by F.pad), and every variant equals the reference bit for bit,
for int32, float and packed-bit outputs (bconv2d.h, output_transform.h)."""

import random
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from onebit import _C, bitpack, kernels

VARIANTS = kernels.runnable_variants("bconv2d")
FAST_VARIANTS = [v for v in VARIANTS if v != "reference"]
ACT_PACKING = {"xor": "sign", "and": "heaviside"}


def quantize(x, packing):
    return (torch.where(x < 0, -1.0, 1.0) if packing == "sign" else (x > 0)).to(torch.float64)


def make_case(n, cg, groups, c_out, h, w, k, mode, seed):
    """Float input (N, C, H, W) and weight (C_out, Cg, K, K) with exact zeros, and their packings."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cg * groups, h, w, generator=g, dtype=torch.float64)
    wt = torch.randn(c_out, cg, k, k, generator=g, dtype=torch.float64)
    x[0, :, 0, :] = 0.0  # sign(0) = +1 -> bit 0; H(0) = 0 -> bit 0
    wt[0, : cg // 2] = 0.0
    xp = kernels.pack(x.permute(0, 2, 3, 1).contiguous(), mode=ACT_PACKING[mode], groups=groups)
    return x, wt, xp, kernels.pack_conv_weight(wt)


def torch_conv(x, wt, mode, stride, padding, dilation, groups, pad_value):
    xq = quantize(x, ACT_PACKING[mode])
    xq = F.pad(xq, (padding, padding, padding, padding), value=float(pad_value))
    y = F.conv2d(xq, quantize(wt, "sign"), stride=stride, dilation=dilation, groups=groups)
    return y.round().to(torch.int32).permute(0, 2, 3, 1).contiguous()


def conv(xp, wp, c_in, cfg, **kw):
    return kernels.bconv2d(xp, wp, c_in, stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"],
                           groups=cfg["groups"], mode=cfg["mode"], pad_value=cfg["pad_value"], **kw)


EDGE_CG = [1, 63, 64, 65, 127, 128, 129]


def sampled_configs(count, seed):
    rng = random.Random(seed)
    out = []
    for i in range(count):
        mode = rng.choice(["xor", "and"])
        k = rng.choice([1, 3])
        out.append(dict(
            n=rng.choice([1, 2]), cg=EDGE_CG[i % len(EDGE_CG)], groups=rng.choice([1, 2]),
            c_out=rng.choice([1, 5, 33, 40]), h=rng.choice([5, 7, 8]), w=rng.choice([5, 6, 9]), k=k,
            stride=rng.choice([1, 2]), padding=rng.choice([0, 1]) if k == 3 else 0, dilation=rng.choice([1, 2]),
            mode=mode, pad_value=rng.choice([1, 0, -1] if mode == "xor" else [0, 1]), seed=i))
        if out[-1]["c_out"] % out[-1]["groups"]:
            out[-1]["c_out"] *= out[-1]["groups"]
    return out


CONFIGS = sampled_configs(42, seed=2024) + [
    dict(n=1, cg=cg, groups=1, c_out=33, h=5, w=5, k=3, stride=1, padding=1, dilation=1, mode=mode,
         pad_value=pv, seed=cg) for cg in (511, 512, 513) for mode, pv in (("xor", 0), ("and", 1))
] + [
    # Dense rows (bconv2d_im2col.cpp): one group and Cg < 64 dividing 64, so several taps share a word
    # (2, 8, 16, 32 channels); 24 does not divide 64 (word-aligned taps). Kernels 3 and 5 (25 taps: a
    # last word partly used), every padding value, stride and dilation, output channels at the ntab
    # kernel's panel and tail edges.
    dict(n=2, cg=cg, groups=1, c_out=c_out, h=7, w=9, k=k, stride=s, padding=k // 2, dilation=d, mode=mode,
         pad_value=pv, seed=100 + i)
    for i, (cg, c_out, k, s, d, mode, pv) in enumerate([
        (32, 32, 3, 1, 1, "xor", 1), (32, 33, 3, 1, 1, "xor", 0), (32, 64, 3, 2, 1, "xor", -1),
        (32, 70, 5, 1, 1, "and", 1), (16, 48, 3, 1, 2, "xor", 0), (16, 40, 3, 2, 1, "and", 0),
        (8, 64, 5, 1, 1, "xor", 0), (2, 33, 3, 1, 1, "xor", -1), (24, 33, 3, 1, 1, "xor", 0),
    ])
]


def ids(cfg):
    return "n{n}-c{cg}x{groups}-o{c_out}-{h}x{w}-k{k}s{stride}p{padding}d{dilation}-{mode}{pad_value}".format(**cfg)


@pytest.mark.parametrize("cfg", CONFIGS, ids=ids)
def test_reference_matches_torch_and_variants_match_reference(cfg):
    x, wt, xp, wp = make_case(cfg["n"], cfg["cg"], cfg["groups"], cfg["c_out"], cfg["h"], cfg["w"], cfg["k"],
                              cfg["mode"], cfg["seed"])
    c_in = cfg["cg"] * cfg["groups"]
    expected = torch_conv(x, wt, cfg["mode"], cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"],
                          cfg["pad_value"])
    got = conv(xp, wp, c_in, cfg, variant="reference")
    assert got.dtype == torch.int32 and torch.equal(got, expected)
    for variant in FAST_VARIANTS:
        assert torch.equal(conv(xp, wp, c_in, cfg, variant=variant), expected), variant


def expected_bits(acc, thr, flip, out_groups):
    """The packed bits of output_transform.h, through the pure-torch packer ({0,1} -> heaviside)."""
    bits = torch.where(flip.bool(), acc > thr, acc < thr).to(torch.float32)
    c = acc.shape[-1]
    grouped = bits.reshape(*acc.shape[:-1], out_groups, c // out_groups)
    return bitpack.pack(grouped, mode="heaviside").reshape(*acc.shape[:-1], -1)


@pytest.mark.parametrize("cfg", CONFIGS[::3], ids=ids)
def test_fused_output_transforms(cfg):
    x, wt, xp, wp = make_case(cfg["n"], cfg["cg"], cfg["groups"], cfg["c_out"], cfg["h"], cfg["w"], cfg["k"],
                              cfg["mode"], cfg["seed"])
    c_in, c_out = cfg["cg"] * cfg["groups"], cfg["c_out"]
    acc = conv(xp, wp, c_in, cfg, variant="reference")
    g = torch.Generator().manual_seed(cfg["seed"])
    mult, bias = torch.randn(c_out, generator=g), torch.randn(c_out, generator=g)
    thr = torch.randint(-20, 20, (c_out,), generator=g, dtype=torch.int32)
    thr[:1] = torch.iinfo(torch.int32).min
    flip = torch.randint(0, 2, (c_out,), generator=g, dtype=torch.uint8)
    out_groups = cfg["groups"] if c_out % cfg["groups"] == 0 else 1
    float_expected = acc.to(torch.float32) * mult + bias
    bits_expected = expected_bits(acc, thr, flip, out_groups)
    for variant in VARIANTS:
        y = conv(xp, wp, c_in, cfg, multiplier=mult, bias=bias, variant=variant)
        assert torch.equal(y, float_expected), variant
        b = conv(xp, wp, c_in, cfg, threshold=thr, flip=flip, out_groups=out_groups, variant=variant)
        assert torch.equal(b.view(torch.int64), bits_expected.view(torch.int64)), variant


@pytest.mark.parametrize("variant", VARIANTS)
def test_pixel_ranges_compose(variant):
    cfg = dict(stride=1, padding=1, dilation=1, groups=1, mode="xor", pad_value=0)
    x, wt, xp, wp = make_case(2, 65, 1, 70, 9, 7, 3, "xor", seed=3)
    whole = conv(xp, wp, 65, cfg, variant=variant)
    out = torch.full_like(whole, 12345)
    pixels = 2 * 9 * 7
    for begin, end in ((0, 50), (50, 51), (51, pixels)):
        conv(xp, wp, 65, cfg, pixel_range=(begin, end), out=out, variant=variant)
    assert torch.equal(out, whole)


def test_dispatch_follows_use_isa():
    cfg = dict(stride=1, padding=1, dilation=1, groups=1, mode="xor", pad_value=1)
    x, wt, xp, wp = make_case(1, 64, 1, 64, 6, 6, 3, "xor", seed=1)
    expected = conv(xp, wp, 64, cfg, variant="reference")
    table = [(name, isa) for name, isa, dispatch in _C.kernel_variants("bconv2d") if dispatch]
    order = ["portable", "avx2", "avx512"]
    for isa in kernels.available_isas():
        with kernels.use_isa(isa):
            out = torch.empty_like(expected)
            ran = _C.bconv2d(xp.numpy(), wp.numpy(), out.numpy(), 64, (1, 1), (1, 1), (1, 1), 1, 0, 1)
            assert ran == [n for n, i in table if order.index(i) <= order.index(isa)][-1]
            assert torch.equal(out, expected)


def test_all_isas_of_this_cpu_are_compiled():
    for op in ("bconv2d", "acc2bits"):
        isas = {isa for name, isa, dispatch in _C.kernel_variants(op) if dispatch}
        assert set(kernels.available_isas()) <= isas, op


def test_bad_inputs_raise_clear_errors():
    x, wt, xp, wp = make_case(1, 65, 1, 4, 5, 5, 3, "xor", seed=0)
    with pytest.raises(ValueError, match="words per pixel"):
        kernels.bconv2d(xp, wp, 129)
    with pytest.raises(ValueError, match="groups"):
        kernels.bconv2d(xp, wp, 65, groups=2)
    with pytest.raises(ValueError, match="pad_value"):
        kernels.bconv2d(xp, wp, 65, mode="and", pad_value=-1)
    with pytest.raises(ValueError, match="empty"):
        kernels.bconv2d(xp[:, :2, :2], wp, 65)
    bad = xp.clone()
    bad[0, 1, 1, 1] = torch.tensor(1 << 3, dtype=torch.int64).view(torch.uint64)  # bit 67 of 65 channels
    with pytest.raises(ValueError, match="x has nonzero padding bits"):
        kernels.bconv2d(bad, wp, 65)
    with pytest.raises(ValueError, match="one value per output channel"):
        kernels.bconv2d(xp, wp, 65, multiplier=torch.ones(3))
    with pytest.raises(ValueError, match="bias needs multiplier"):
        kernels.bconv2d(xp, wp, 65, bias=torch.ones(4))
    with pytest.raises(TypeError, match="integer"):
        kernels.bconv2d(xp, wp, 65, threshold=torch.ones(4))
    with pytest.raises(ValueError, match="out must be float32"):
        _C.bconv2d(xp.numpy(), wp.numpy(), torch.empty(1, 3, 3, 4, dtype=torch.int32).numpy(), 65, (1, 1), (0, 0),
                   (1, 1), 1, 0, 1, multiplier=torch.ones(4).numpy())
    with pytest.raises(ValueError, match="out must have shape"):
        _C.bconv2d(xp.numpy(), wp.numpy(), torch.empty(1, 3, 4, 4, dtype=torch.int32).numpy(), 65, (1, 1), (0, 0),
                   (1, 1), 1, 0, 1)


@pytest.mark.parametrize("pad_value", [1, 0])
@pytest.mark.parametrize("c_in", [64, 128, 256, 512])
def test_resnet18_like_layers(c_in, pad_value):
    """ResNet-18 3x3 layers at reduced spatial size (full size: the slow tier)."""
    cfg = dict(stride=1, padding=1, dilation=1, groups=1, mode="xor", pad_value=pad_value)
    x, wt, xp, wp = make_case(1, c_in, 1, c_in, 7, 7, 3, "xor", seed=c_in)
    expected = torch_conv(x, wt, "xor", 1, 1, 1, 1, pad_value)
    for variant in FAST_VARIANTS:
        assert torch.equal(conv(xp, wp, c_in, cfg, variant=variant), expected), variant


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["xor", "and"])
@pytest.mark.parametrize("shape", [(56, 64), (28, 128), (14, 256), (7, 512)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_resnet18_layers_full_size(shape, mode):
    hw, c = shape
    cfg = dict(stride=1, padding=1, dilation=1, groups=1, mode=mode, pad_value=0)
    x, wt, xp, wp = make_case(1, c, 1, c, hw, hw, 3, mode, seed=hw)
    expected = torch_conv(x, wt, mode, 1, 1, 1, 1, 0)
    for variant in FAST_VARIANTS:
        assert torch.equal(conv(xp, wp, c, cfg, variant=variant), expected), variant


def test_stride_larger_than_input_window_is_an_error_not_one_pixel():
    # (H + 2p - d(k-1) - 1) < 0 must give an empty output (an error), even with stride > 1 where
    # C++ truncating division would round -1 / 2 up to 0 and report one output row.
    x, wt, xp, wp = make_case(1, 8, 1, 4, 2, 2, 3, "xor", seed=0)
    with pytest.raises(ValueError, match="empty"):
        _C.bconv2d(xp.numpy(), wp.numpy(), torch.empty(1, 1, 1, 4, dtype=torch.int32).numpy(), 8, (2, 2), (0, 0),
                   (1, 1), 1, 0, 1)


# Operands that end right before a PROT_NONE page (as in test_bgemm.py): a variant that reads past
# the input, the weights or the thresholds, or writes past the output, faults. In a subprocess so
# that a fault fails this test instead of killing the session.
GUARD_PAGE_SCRIPT = r"""
import ctypes, mmap
import numpy as np
from onebit import _C, kernels

libc = ctypes.CDLL(None, use_errno=True)
PAGE = mmap.PAGESIZE
keep = []

def guarded(src):
    nbytes = src.nbytes
    size = -(-max(nbytes, 1) // PAGE) * PAGE
    buf = mmap.mmap(-1, size + PAGE)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    assert libc.mprotect(ctypes.c_void_p(addr + size), PAGE, 0) == 0
    keep.append(buf)
    out = np.frombuffer(buf, dtype=src.dtype, count=src.size, offset=size - nbytes).reshape(src.shape)
    out[...] = src
    return out

rng = np.random.default_rng(0)
for cg, groups, c_out, k, pad, stride in ((65, 1, 7, 3, 1, 1), (64, 2, 6, 3, 1, 2), (1, 1, 3, 1, 0, 1), (130, 1, 33, 3, 0, 1)):
    wg = -(-cg // 64)
    x = rng.integers(0, 2**64, size=(1, 5, 6, groups * wg), dtype=np.uint64)
    w = rng.integers(0, 2**64, size=(c_out, k, k, wg), dtype=np.uint64)
    if cg % 64:
        keep_bits = np.uint64((1 << (cg % 64)) - 1)
        x.reshape(-1, wg)[:, -1] &= keep_bits
        w.reshape(-1, wg)[:, -1] &= keep_bits
    oh, ow = (5 + 2 * pad - k) // stride + 1, (6 + 2 * pad - k) // stride + 1
    thr = guarded(rng.integers(-5, 5, size=c_out, dtype=np.int32))
    for mode, pad_value in ((0, 0), (1, 1)):
        ref = np.empty((1, oh, ow, c_out), dtype=np.int32)
        geo = (groups * cg, (stride, stride), (pad, pad), (1, 1), groups, mode, pad_value)
        _C.bconv2d(x, w, ref, *geo, variant="reference")
        for variant in kernels.runnable_variants("bconv2d"):
            out = guarded(np.zeros((1, oh, ow, c_out), dtype=np.int32))
            _C.bconv2d(guarded(x), guarded(w), out, *geo, variant=variant)
            assert (out == ref).all(), (variant, cg, groups)
            bits = guarded(np.zeros((1, oh, ow, -(-c_out // 64)), dtype=np.uint64))
            _C.bconv2d(guarded(x), guarded(w), bits, *geo, threshold=thr, variant=variant)
print("ok")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mprotect through libc: Linux only")
def test_no_access_past_the_operands():
    result = subprocess.run([sys.executable, "-c", GUARD_PAGE_SCRIPT], capture_output=True, text=True)
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"
    assert result.stdout.strip() == "ok"
