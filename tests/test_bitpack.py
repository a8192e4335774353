"""The pure-torch bit convention (onebit.bitpack): pack/unpack round trips and hand-checked words."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from onebit import bitpack

EDGE_CHANNELS = [1, 63, 64, 65, 127, 128, 129, 511, 512, 513]


def test_hand_checked_words():
    x = torch.tensor([[-1.0, 1.0, 0.0, -0.5] + [1.0] * 60 + [-2.0]])  # 65 channels
    words = bitpack.pack(x).view(torch.int64)
    # bits 0 and 3 set (negative), sign(0)=+1 gives bit 0; channel 64 -> word 1 bit 0
    assert words.tolist() == [[0b1001, 1]]
    heav = bitpack.pack(x, mode="heaviside").view(torch.int64)
    expected0 = 0b0010 | sum(1 << j for j in range(4, 64))
    expected0 -= 1 << 64 if expected0 >= 1 << 63 else 0  # as int64
    assert heav.tolist() == [[expected0, 0]]


def test_bit_63_is_the_top_bit():
    x = torch.ones(64)
    x[63] = -1.0
    assert bitpack.pack(x).tolist() == [1 << 63]


@pytest.mark.parametrize("channels", EDGE_CHANNELS)
@pytest.mark.parametrize("mode", ["sign", "heaviside"])
def test_round_trip_at_word_edges(channels, mode):
    g = torch.Generator().manual_seed(channels)
    x = torch.randn(3, 2, channels, generator=g)
    packed = bitpack.pack(x, mode=mode)
    assert packed.dtype == torch.uint64 and packed.shape == (3, 2, bitpack.words_for(channels))
    expected = torch.where(x < 0, -1.0, 1.0) if mode == "sign" else (x > 0).float()
    assert torch.equal(bitpack.unpack(packed, channels, mode=mode), expected)


@pytest.mark.parametrize("channels", EDGE_CHANNELS)
def test_padding_bits_are_zero(channels):
    packed = bitpack.pack(-torch.ones(channels)).view(torch.int64)  # every real bit set
    pad = bitpack.words_for(channels) * 64 - channels
    last = int(packed[-1]) & ((1 << 64) - 1)
    assert last >> (64 - pad) == 0 if pad else True
    assert bin(last).count("1") == 64 - pad


@settings(max_examples=60, deadline=None)
@given(channels=st.integers(1, 300), rows=st.integers(1, 5), seed=st.integers(0, 2**31 - 1),
       mode=st.sampled_from(["sign", "heaviside"]))
def test_thresholds_match_shifted_pack(channels, rows, seed, mode):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, channels, generator=g)
    t = torch.randn(channels, generator=g)
    assert torch.equal(bitpack.pack(x, mode=mode, thresholds=t).view(torch.int64),
                       bitpack.pack(x - t, mode=mode).view(torch.int64))


def test_errors():
    with pytest.raises(ValueError, match="valid"):
        bitpack.pack(torch.zeros(3), mode="xor")
    with pytest.raises(ValueError, match="thresholds"):
        bitpack.pack(torch.zeros(2, 3), thresholds=torch.zeros(2))
    with pytest.raises(ValueError, match="words"):
        bitpack.unpack(torch.zeros(2, dtype=torch.uint64), 200)
    with pytest.raises(TypeError, match="uint64"):
        bitpack.unpack(torch.zeros(2), 100)
