"""Binary max-pool on packed bits (bmaxpool.h): every variant equals the reference, and the
reference equals torch max_pool2d on the +-1 / {0,1} values the bits stand for."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from onebit import bitpack, kernels

VARIANTS = kernels.runnable_variants("bmaxpool")

CASES = [
    (c, k, s, p, d)
    for c, (k, s, p, d) in itertools.product(
        [1, 63, 64, 65, 129],
        [(2, 2, 0, 1), (3, 2, 1, 1), (3, 1, 1, 1), (2, 1, 1, 1), (3, 2, 1, 2), (1, 1, 0, 1), (3, 3, 0, 1)],
    )
]


@pytest.mark.parametrize("mode", ["sign", "heaviside"])
@pytest.mark.parametrize("c,k,s,p,d", CASES)
def test_matches_torch(c, k, s, p, d, mode):
    g = torch.Generator().manual_seed(c * 100 + k * 10 + s)
    x = torch.randn(2, 7, 9, c, generator=g)
    x[0, 0] = 0.0
    values = torch.where(x < 0, -1.0, 1.0) if mode == "sign" else (x > 0).to(torch.float32)
    expected = F.max_pool2d(values.permute(0, 3, 1, 2), k, s, p, d).permute(0, 2, 3, 1)
    packed = kernels.pack(x, mode=mode)
    for variant in VARIANTS:
        got = kernels.bmaxpool(packed, k, s, p, d, mode=mode, variant=variant)
        assert torch.equal(bitpack.unpack(got, c, mode=mode), expected.contiguous()), variant
        # padding bits past c stay 0
        assert torch.equal(got.view(torch.int64), bitpack.pack(expected.contiguous(), mode=mode).view(torch.int64))


def test_errors():
    x = torch.zeros(1, 5, 5, 1, dtype=torch.uint64)
    with pytest.raises(ValueError, match="at most half"):
        kernels.bmaxpool(x, 2, 1, 2)
    with pytest.raises(ValueError, match="empty"):
        kernels.bmaxpool(x, 6)
    with pytest.raises(ValueError, match="entirely in the padding"):
        kernels.bmaxpool(torch.zeros(1, 1, 1, 1, dtype=torch.uint64), 2, 1, 2, 3)
    with pytest.raises(ValueError, match="valid"):
        kernels.bmaxpool(x, 2, mode="max")


@pytest.mark.parametrize("c", [5, 64, 100])
def test_per_channel_and_mask(c):
    # and_mask bit set: +-1 max (AND of bits); clear: {0,1} max (OR of bits).
    g = torch.Generator().manual_seed(c)
    x = torch.randn(1, 6, 7, c, generator=g)
    use_and = torch.rand(c, generator=g) < 0.5
    packed = kernels.pack(x, mode="sign")  # bit = x < 0 for every channel
    bits = (x < 0).to(torch.float32).permute(0, 3, 1, 2)
    and_pool = -F.max_pool2d(-bits, 3, 2, 1)  # min of bits = AND
    or_pool = F.max_pool2d(bits, 3, 2, 1)
    expected = torch.where(use_and.view(1, c, 1, 1), and_pool, or_pool).permute(0, 2, 3, 1).contiguous()
    mask = bitpack.pack(use_and.to(torch.float32), mode="heaviside")
    for variant in VARIANTS:
        got = kernels.bmaxpool(packed, 3, 2, 1, and_mask=mask, variant=variant)
        assert torch.equal(got.view(torch.int64), bitpack.pack(expected, mode="heaviside").view(torch.int64)), variant
