"""Block-sparse kernels for SBNN's {0,1} weights (sbgemm.h): sbgemm and bconv2d's "mask" mode.

Oracle: torch float matmul / conv2d on the +-1 activations and {0,1} weights the bits stand for.
The reference equals the oracle; every variant equals the reference bit for bit, over K at word
edges, row counts at tile edges, block counts at the 8-row block edge, and masks from fully dense
to all zero (structured: whole 64-channel words x 8 output channels zero, and unstructured).
"""

import random

import pytest
import torch
import torch.nn.functional as F

from onebit import bitpack, kernels

VARIANTS = kernels.runnable_variants("sbgemm")
FAST_VARIANTS = [v for v in VARIANTS if v != "reference"]
CONV_VARIANTS = kernels.runnable_variants("bconv2d")
EDGE_K = [1, 63, 64, 65, 127, 128, 129, 511, 512, 513]


def block_mask(n, k, keep, seed, density=0.5):
    """{0,1} float mask (n, k): each (8-row block, 64-column word) is kept with probability `keep`
    (then its bits are 1 with probability `density`), else all zero."""
    g = torch.Generator().manual_seed(seed)
    blocks, words = (n + 7) // 8, (k + 63) // 64
    live = (torch.rand(blocks, words, generator=g) < keep).repeat_interleave(8, 0).repeat_interleave(64, 1)
    return (live[:n, :k] & (torch.rand(n, k, generator=g) < density)).float()


def operands(m, n, k, keep, seed):
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(m, k, generator=g)
    x[0, : k // 3] = 0.0  # sign(0) = +1 -> bit 0
    b = block_mask(n, k, keep, seed)
    expected = (torch.where(x < 0, -1.0, 1.0) @ b.T).to(torch.int32)
    return bitpack.pack(x, mode="sign"), bitpack.pack(b, mode="heaviside"), expected


def test_variant_list():
    assert VARIANTS[0] == "reference"
    assert "4x8__portable" in VARIANTS


@pytest.mark.parametrize("k", EDGE_K)
@pytest.mark.parametrize("keep", [0.0, 0.3, 1.0])
def test_reference_matches_torch_and_variants_match_reference(k, keep):
    for m, n in ((1, 1), (2, 7), (3, 8), (5, 9), (7, 17), (12, 40), (17, 16), (25, 23)):
        a, b, expected = operands(m, n, k, keep, seed=k * 31 + m)
        got = kernels.sbgemm(a, b, k, variant="reference")
        assert torch.equal(got, expected), (m, n)
        for variant in FAST_VARIANTS:
            assert torch.equal(kernels.sbgemm(a, b, k, variant=variant), expected), (variant, m, n)


def test_unstructured_masks_and_dispatch():
    g = torch.Generator().manual_seed(5)
    for m, n, k in ((61, 33, 300), (4, 64, 1152), (100, 3, 65)):
        x = torch.randn(m, k, generator=g)
        b = (torch.rand(n, k, generator=g) < 0.25).float()
        expected = (torch.where(x < 0, -1.0, 1.0) @ b.T).to(torch.int32)
        assert torch.equal(kernels.sbgemm(bitpack.pack(x, mode="sign"), bitpack.pack(b, mode="heaviside"), k), expected)


def test_bad_inputs_raise_clear_errors():
    a = torch.zeros(2, 2, dtype=torch.uint64)
    with pytest.raises(ValueError, match="k=200"):
        kernels.sbgemm(a, a, 200)
    with pytest.raises(ValueError, match="same number"):
        kernels.sbgemm(a, torch.zeros(2, 3, dtype=torch.uint64), 100)
    b = torch.full((1, 2), -1, dtype=torch.int64)
    with pytest.raises(ValueError, match="padding bits"):
        kernels.sbgemm(a, b, 100)
    with pytest.raises(ValueError, match="unknown kernel variant"):
        kernels.sbgemm(a, a, 100, variant="nope")


# ---- bconv2d, mode "mask" ----------------------------------------------------------------------------

def conv_case(n, cg, groups, c_out, h, w, kk, keep, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cg * groups, h, w, generator=g, dtype=torch.float64)
    x[0, :, 0, :] = 0.0
    # The mask per group: block structure over (output channel, tap, input word).
    og = c_out // groups
    flat = torch.cat([block_mask(og, kk * kk * cg, keep, seed + gi) for gi in range(groups)])
    m = flat.reshape(c_out, kk, kk, cg).permute(0, 3, 1, 2).contiguous().double()
    xp = kernels.pack(x.permute(0, 2, 3, 1).contiguous(), mode="sign", groups=groups)
    mp = kernels.pack(m.permute(0, 2, 3, 1).contiguous(), mode="heaviside")
    return x, m, xp, mp


def conv_configs(count, seed):
    rng = random.Random(seed)
    out = []
    for i in range(count):
        kk = rng.choice([1, 3])
        groups = rng.choice([1, 1, 2])
        c_out = rng.choice([1, 8, 9, 24, 33]) * groups
        out.append(dict(n=rng.choice([1, 2]), cg=[1, 63, 64, 65, 127, 128, 129][i % 7], groups=groups, c_out=c_out,
                        h=rng.choice([5, 7]), w=rng.choice([5, 6]), k=kk, stride=rng.choice([1, 2]),
                        padding=rng.choice([0, 1]) if kk == 3 else 0, dilation=rng.choice([1, 2]),
                        pad_value=rng.choice([1, 0, -1]), keep=rng.choice([0.0, 0.25, 0.6, 1.0]), seed=i))
    return out


@pytest.mark.parametrize("cfg", conv_configs(28, seed=7), ids=lambda c: "c{cg}x{groups}-o{c_out}-k{k}s{stride}p{padding}"
                         "d{dilation}-pad{pad_value}-keep{keep}".format(**c))
def test_bconv2d_mask_mode_matches_torch(cfg):
    x, m, xp, mp = conv_case(cfg["n"], cfg["cg"], cfg["groups"], cfg["c_out"], cfg["h"], cfg["w"], cfg["k"],
                             cfg["keep"], cfg["seed"])
    p = cfg["padding"]
    xq = F.pad(torch.where(x < 0, -1.0, 1.0).double(), (p, p, p, p), value=float(cfg["pad_value"]))
    expected = F.conv2d(xq, m, stride=cfg["stride"], dilation=cfg["dilation"], groups=cfg["groups"])
    expected = expected.round().to(torch.int32).permute(0, 2, 3, 1).contiguous()
    g = torch.Generator().manual_seed(cfg["seed"])
    mult, bias = torch.randn(cfg["c_out"], generator=g), torch.randn(cfg["c_out"], generator=g)
    for variant in CONV_VARIANTS:
        got = kernels.bconv2d(xp, mp, cfg["cg"] * cfg["groups"], stride=cfg["stride"], padding=p,
                              dilation=cfg["dilation"], groups=cfg["groups"], mode="mask", pad_value=cfg["pad_value"],
                              variant=variant)
        assert torch.equal(got, expected), variant
        y = kernels.bconv2d(xp, mp, cfg["cg"] * cfg["groups"], stride=cfg["stride"], padding=p,
                            dilation=cfg["dilation"], groups=cfg["groups"], mode="mask", pad_value=cfg["pad_value"],
                            multiplier=mult, bias=bias, variant=variant)
        assert torch.equal(y, expected.to(torch.float32) * mult + bias), variant
