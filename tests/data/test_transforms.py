"""Transforms: shapes on single images and batches, seeded determinism, exact flips and crops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from onebit.data.transforms import (CenterCrop, Compose, Normalize, RandomCrop, RandomHorizontalFlip,
                                    RandomResizedCrop, Resize)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def image(*shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=gen(123))


def is_window(out: torch.Tensor, padded: torch.Tensor) -> bool:
    """``out`` (C, h, w) equals some window of ``padded`` (C, H, W)."""
    h, w = out.shape[-2:]
    return any(torch.equal(out, padded[:, i:i + h, j:j + w])
               for i in range(padded.shape[-2] - h + 1) for j in range(padded.shape[-1] - w + 1))


RANDOM = {
    "flip": lambda g: RandomHorizontalFlip(0.5, generator=g),
    "crop": lambda g: RandomCrop(8, padding=2, generator=g),
    "rrc": lambda g: RandomResizedCrop(6, generator=g),
    "compose": lambda g: Compose([RandomCrop(8, 2, generator=g), RandomHorizontalFlip(generator=g),
                                  Resize(4), Normalize([0.5] * 3, [0.25] * 3)]),
}


@pytest.mark.parametrize("name", RANDOM)
@pytest.mark.parametrize("shape", [(3, 8, 8), (16, 3, 8, 8)])
def test_seeded_generator_is_reproducible(name, shape):
    x = image(*shape)
    a, b, c = RANDOM[name](gen(1))(x), RANDOM[name](gen(1))(x), RANDOM[name](gen(2))
    assert torch.equal(a, b)
    assert any(not torch.equal(a, c(x)) for _ in range(5))  # another seed draws differently


@pytest.mark.parametrize("t, shape, expected", [
    (RandomCrop(5, padding=1), (3, 8, 9), (3, 5, 5)),
    (RandomCrop((4, 6)), (2, 3, 8, 9), (2, 3, 4, 6)),
    (Resize((4, 5)), (3, 8, 8), (3, 4, 5)),
    (Resize(10), (3, 20, 40), (3, 10, 20)),
    (Resize(10), (2, 1, 40, 20), (2, 1, 20, 10)),
    (CenterCrop(3), (4, 3, 5, 7), (4, 3, 3, 3)),
    (CenterCrop((6, 9)), (3, 4, 5), (3, 6, 9)),
    (RandomResizedCrop((7, 5)), (3, 20, 30), (3, 7, 5)),
    (RandomResizedCrop(4), (5, 3, 20, 30), (5, 3, 4, 4)),
    (Normalize([0.0], [1.0]), (2, 1, 3, 3), (2, 1, 3, 3)),
])
def test_output_shapes(t, shape, expected):
    out = t(image(*shape))
    assert out.shape == expected and out.dtype == torch.float32


def test_flip_is_exact():
    x = image(3, 4, 5)
    assert torch.equal(RandomHorizontalFlip(1.0)(x), x.flip(-1))
    assert torch.equal(RandomHorizontalFlip(1.0)(x)[:, :, 0], x[:, :, -1])
    assert RandomHorizontalFlip(0.0)(x) is x
    batch = image(64, 3, 4, 5)
    out = RandomHorizontalFlip(0.5, generator=gen())(batch)
    flipped = [torch.equal(o, b.flip(-1)) for o, b in zip(out, batch)]
    assert all(f or torch.equal(o, b) for f, o, b in zip(flipped, out, batch))
    assert 10 < sum(flipped) < 54  # each sample draws on its own


@pytest.mark.parametrize("batched", [False, True])
def test_random_crop_is_a_window_of_the_zero_padded_image(batched):
    x = image(8, 3, 6, 6) if batched else image(3, 6, 6)
    out = RandomCrop(6, padding=2, generator=gen())(x)
    padded = F.pad(x, (2, 2, 2, 2))
    for o, p in zip(out, padded) if batched else [(out, padded)]:
        assert is_window(o, p)
    if batched:
        assert len({tuple(o.flatten()[:4].tolist()) for o in out}) > 1  # offsets differ per sample
    assert torch.equal(RandomCrop(6)(x), x)
    with pytest.raises(ValueError, match="larger than padded image"):
        RandomCrop(11, padding=2)(x)


def test_center_crop_and_resize_values():
    x = torch.arange(25.0).view(1, 5, 5)
    assert CenterCrop(3)(x).flatten().tolist() == [6, 7, 8, 11, 12, 13, 16, 17, 18]
    padded = CenterCrop(7)(x)
    assert torch.equal(padded[:, 1:6, 1:6], x) and padded[:, 0].abs().sum() == 0
    torch.testing.assert_close(Resize((2, 3))(torch.full((3, 8, 8), 0.25)), torch.full((3, 2, 3), 0.25))
    assert Resize(5)(x) is x


def test_random_resized_crop_box():
    t = RandomResizedCrop(4, scale=(0.25, 0.5), generator=gen())
    for _ in range(50):
        top, left, h, w = t.get_params(20, 30)
        assert 0 <= top <= 20 - h and 0 <= left <= 30 - w
        assert 0.2 <= h * w / 600 <= 0.55 and 3 / 4 - 0.1 <= w / h <= 4 / 3 + 0.1
    whole = RandomResizedCrop(6, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    x = image(3, 6, 6)
    assert torch.equal(whole(x), x) or torch.allclose(whole(x), x)
    assert RandomResizedCrop(4, ratio=(1.0, 1.0)).get_params(2, 200)[2:] == (2, 2)  # fallback: clamped centre crop


def test_normalize():
    x = image(2, 3, 4, 4)
    out = Normalize([0.1, 0.2, 0.3], [0.5, 0.25, 2.0])(x)
    mean, std = torch.tensor([0.1, 0.2, 0.3]).view(3, 1, 1), torch.tensor([0.5, 0.25, 2.0]).view(3, 1, 1)
    torch.testing.assert_close(out, (x - mean) / std)
    with pytest.raises(ValueError, match="3 channels configured, tensor has 1"):
        Normalize([0.1, 0.2, 0.3], [1, 1, 1])(image(1, 4, 4))


@pytest.mark.parametrize("make, message", [
    (lambda: RandomHorizontalFlip(1.5), r"p must be in \[0, 1\]"),
    (lambda: RandomCrop(0), "size must be a positive int"),
    (lambda: RandomCrop(4, padding=-1), "padding must be >= 0"),
    (lambda: RandomResizedCrop(4, scale=(0.5, 0.1)), "scale"),
    (lambda: RandomResizedCrop(4, ratio=(2.0, 1.0)), "ratio"),
    (lambda: Normalize([0.0], [0.0]), "stds must be > 0"),
    (lambda: Normalize([0.0, 0.0], [1.0]), "2 means but 1 stds"),
    (lambda: CenterCrop(2)(torch.zeros(4, 4)), r"expected a \(C, H, W\) or \(N, C, H, W\) tensor"),
])
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()
