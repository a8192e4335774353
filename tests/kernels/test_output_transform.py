"""Output transforms (output_transform.h): int32 -> packed bits with per-channel threshold and flip,
every variant equal to the reference and to the definition; int32 -> float; and bit_thresholds,
which must reproduce sign / Heaviside of the float32 affine map exactly for every integer acc."""

import pytest
import torch

from onebit import bitpack, kernels

VARIANTS = kernels.runnable_variants("acc2bits")
INT32 = torch.iinfo(torch.int32)


def expected_bits(acc, thr, flip, groups):
    bits = torch.where(flip.bool(), acc > thr, acc < thr).to(torch.float32)
    c = acc.shape[-1]
    return bitpack.pack(bits.reshape(acc.shape[0], groups, c // groups), mode="heaviside").reshape(acc.shape[0], -1)


@pytest.mark.parametrize("channels,groups", [(1, 1), (7, 1), (15, 1), (16, 1), (17, 1), (63, 1), (64, 1), (65, 1),
                                             (129, 1), (130, 2), (96, 3), (512, 1), (513, 1)])
def test_acc2bits_variants_match_definition(channels, groups):
    g = torch.Generator().manual_seed(channels)
    acc = torch.randint(-50, 50, (9, channels), generator=g, dtype=torch.int32)
    acc[0] = INT32.max
    acc[1] = INT32.min
    thr = torch.randint(-50, 50, (channels,), generator=g, dtype=torch.int32)
    thr[: channels // 4] = INT32.min
    thr[channels // 4: channels // 3] = INT32.max
    acc[2] = thr  # ties: acc == thr gives 0 in both directions
    flip = torch.randint(0, 2, (channels,), generator=g, dtype=torch.uint8)
    for f in (flip, None):
        fl = torch.zeros(channels, dtype=torch.uint8) if f is None else f
        expected = expected_bits(acc, thr, fl, groups)
        for variant in VARIANTS:
            got = kernels.acc2bits(acc, thr, f, groups=groups, variant=variant)
            assert torch.equal(got.view(torch.int64), expected.view(torch.int64)), (variant, f is None)


FLOAT_VARIANTS = kernels.runnable_variants("acc2float")


def test_acc2float_variant_list():
    assert FLOAT_VARIANTS[:2] == ["reference", "portable"]
    for isa in kernels.available_isas()[1:]:
        assert isa in FLOAT_VARIANTS


@pytest.mark.parametrize("channels", [1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 70, 513])
def test_acc2float_variants_match_torch(channels):
    # Bit for bit against torch's two roundings (an FMA would differ in the last bit for many of these):
    # large accumulators (float conversion rounds above 2^24), extremes, multipliers of every scale.
    g = torch.Generator().manual_seed(channels)
    acc = torch.randint(-3000, 3000, (2, 5, channels), generator=g, dtype=torch.int32)
    acc[0, 0] = torch.randint(-(2**31), 2**31 - 1, (channels,), generator=g, dtype=torch.int32)
    acc[0, 1] = INT32.max
    acc[0, 2] = INT32.min
    m = torch.randn(channels, generator=g) * torch.logspace(-6, 3, channels)
    b = torch.randn(channels, generator=g) * 100
    for variant in FLOAT_VARIANTS + [None]:
        assert torch.equal(kernels.acc2float(acc, m, b, variant=variant), acc.to(torch.float32) * m + b), variant
        assert torch.equal(kernels.acc2float(acc, m, variant=variant), acc.to(torch.float32) * m), variant


@pytest.mark.parametrize("out", ["sign", "heaviside"])
def test_bit_thresholds_reproduce_float_layer(out):
    g = torch.Generator().manual_seed(1 if out == "sign" else 2)
    c = 64
    m = torch.randn(c, generator=g) * torch.logspace(-3, 1, c)
    b = torch.randn(c, generator=g) * 50
    m[:4] = 0.0  # constant bits
    b[1] = 0.0
    m[4:8] = -m[4:8].abs()  # negative scales (BN with negative gamma)
    b[8] = 0.0  # boundary exactly at acc = 0
    b[9] = m[9] * 7  # boundary exactly at an integer: z(-7) = 0
    thr, flip = kernels.bit_thresholds(m, b, out=out)
    acc = torch.arange(-3000, 3001, dtype=torch.int32).unsqueeze(1).expand(-1, c).contiguous()
    z = acc.to(torch.float32) * m + b
    want = (z < 0) if out == "sign" else (z > 0)
    got = torch.where(flip.bool(), acc > thr, acc < thr)
    assert torch.equal(got, want)
    packed = kernels.acc2bits(acc, thr, flip)
    assert torch.equal(packed.view(torch.int64), bitpack.pack(want.to(torch.float32), mode="heaviside").view(torch.int64))


def test_acc2bits_errors():
    acc = torch.zeros(3, 10, dtype=torch.int32)
    with pytest.raises(ValueError, match="one value per output channel"):
        kernels.acc2bits(acc, torch.zeros(9, dtype=torch.int32))
    with pytest.raises(ValueError, match="groups"):
        kernels.acc2bits(acc, torch.zeros(10, dtype=torch.int32), groups=3)
    with pytest.raises(TypeError, match="int32"):
        kernels.acc2bits(acc.float(), torch.zeros(10, dtype=torch.int32))
