"""Image augmentation in plain torch, on float tensors of shape (C, H, W) or batches (N, C, H, W).

Random transforms draw from ``generator`` when one is given (reproducible), else from torch's
global RNG. On a batch each sample gets its own draw. In a ``DataLoader`` with workers, prefer
``generator=None``: the loader seeds the global RNG per worker, while a generator passed here is
copied into every worker and would repeat the same draws in each.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["CenterCrop", "Compose", "Normalize", "RandomCrop", "RandomHorizontalFlip", "RandomResizedCrop", "Resize"]

Size = int | Sequence[int]


def _check(x: torch.Tensor, name: str) -> None:
    if x.dim() not in (3, 4):
        raise ValueError(f"{name}: expected a (C, H, W) or (N, C, H, W) tensor, got shape {tuple(x.shape)}")


def _pair(size: Size, name: str) -> tuple[int, int]:
    pair = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name}: size must be a positive int or (height, width), got {size!r}")
    return pair  # type: ignore[return-value]


def _randint(high: int, generator: torch.Generator | None, n: int | None = None) -> torch.Tensor:
    """Integers uniform in [0, high): a 0-d tensor, or ``n`` of them."""
    return torch.randint(0, high, () if n is None else (n,), generator=generator)


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * torch.rand((), generator=generator, dtype=torch.float64).item()


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str, antialias: bool) -> torch.Tensor:
    """``interpolate`` on (C, H, W) or (N, C, H, W); antialias applies to bilinear/bicubic only."""
    if not x.is_floating_point():
        raise TypeError(f"resize needs a float tensor, got {x.dtype}")
    batch = x if x.dim() == 4 else x.unsqueeze(0)
    smooth = mode in ("bilinear", "bicubic")
    out = F.interpolate(batch, size=size, mode=mode, align_corners=False if smooth else None,
                        antialias=antialias and smooth)
    return out if x.dim() == 4 else out.squeeze(0)


class Compose:
    """Apply ``transforms`` in order."""

    def __init__(self, transforms: Iterable[Callable[[torch.Tensor], torch.Tensor]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(map(repr, self.transforms)) + "])"


class Normalize:
    """``(x - mean) / std`` per channel (dim -3); returns a new tensor."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std):
            raise ValueError(f"Normalize: {len(mean)} means but {len(std)} stds")
        if any(s <= 0 for s in std):
            raise ValueError(f"Normalize: stds must be > 0, got {list(std)}")
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check(x, "Normalize")
        if x.shape[-3] != len(self.mean):
            raise ValueError(f"Normalize: {len(self.mean)} channels configured, tensor has {x.shape[-3]}")
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return (x - mean) / std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p`` (per sample on a batch)."""

    def __init__(self, p: float = 0.5, *, generator: torch.Generator | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p, self.generator = p, generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check(x, "RandomHorizontalFlip")
        if x.dim() == 3:
            return x.flip(-1) if torch.rand((), generator=self.generator).item() < self.p else x
        mask = torch.rand(x.shape[0], generator=self.generator) < self.p
        return torch.where(mask.to(x.device).view(-1, 1, 1, 1), x.flip(-1), x)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomCrop:
    """Zero-pad each side by ``padding``, then crop a random ``size`` window (per sample on a batch)."""

    def __init__(self, size: Size, padding: int = 0, *, generator: torch.Generator | None = None) -> None:
        if padding < 0:
            raise ValueError(f"RandomCrop: padding must be >= 0, got {padding}")
        self.size, self.padding, self.generator = _pair(size, "RandomCrop"), int(padding), generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check(x, "RandomCrop")
        p = self.padding
        padded = F.pad(x, (p, p, p, p)) if p else x
        (h, w), (ph, pw) = self.size, padded.shape[-2:]
        if h > ph or w > pw:
            raise ValueError(f"RandomCrop: crop {self.size} larger than padded image {(ph, pw)}")
        if x.dim() == 3:
            i, j = _randint(ph - h + 1, self.generator).item(), _randint(pw - w + 1, self.generator).item()
            return padded[:, i:i + h, j:j + w]
        n = x.shape[0]
        i, j = _randint(ph - h + 1, self.generator, n), _randint(pw - w + 1, self.generator, n)
        rows = (i[:, None] + torch.arange(h)).to(x.device)  # (N, h)
        cols = (j[:, None] + torch.arange(w)).to(x.device)  # (N, w)
        batch = torch.arange(n, device=x.device)
        # Advanced indices around a slice: the result is (N, h, w, C).
        out = padded[batch[:, None, None], :, rows[:, :, None], cols[:, None, :]]
        return out.permute(0, 3, 1, 2).contiguous()

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class Resize:
    """Resize to ``(height, width)``, or with an int, scale the shorter side to it (aspect kept)."""

    def __init__(self, size: Size, *, interpolation: str = "bilinear", antialias: bool = True) -> None:
        self.size = size if isinstance(size, int) else _pair(size, "Resize")
        if isinstance(size, int) and size < 1:
            raise ValueError(f"Resize: size must be >= 1, got {size}")
        self.interpolation, self.antialias = interpolation, antialias

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        if not isinstance(self.size, int):
            return self.size
        short, long = (height, width) if height <= width else (width, height)
        new_long = max(1, int(self.size * long / short))
        return (self.size, new_long) if height <= width else (new_long, self.size)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check(x, "Resize")
        size = self.output_size(*x.shape[-2:])
        if size == tuple(x.shape[-2:]):
            return x
        return _resize(x, size, self.interpolation, self.antialias)

    def __repr__(self) -> str:
        return f"Resize(size={self.size}, interpolation={self.interpolation!r}, antialias={self.antialias})"


class CenterCrop:
    """Crop the central ``size`` window, zero-padding first if the image is smaller."""

    def __init__(self, size: Size) -> None:
        self.size = _pair(size, "CenterCrop")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check(x, "CenterCrop")
        (h, w), (ih, iw) = self.size, x.shape[-2:]
        if h > ih or w > iw:
            dh, dw = max(h - ih, 0), max(w - iw, 0)
            x = F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
            ih, iw = x.shape[-2:]
        top, left = int(round((ih - h) / 2.0)), int(round((iw - w) / 2.0))
        return x[..., top:top + h, left:left + w]

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


class RandomResizedCrop:
    """Crop a random box (area fraction in ``scale``, aspect ratio in ``ratio``), resize to ``size``.

    The box is drawn as in Szegedy et al. 2015 (Inception) and torchvision: up to 10 tries with a
    log-uniform aspect ratio, then a centre crop clamped to ``ratio``. Per sample on a batch.
    """

    def __init__(self, size: Size, scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), *, interpolation: str = "bilinear",
                 antialias: bool = True, generator: torch.Generator | None = None) -> None:
        if not (0 < scale[0] <= scale[1] <= 1):
            raise ValueError(f"RandomResizedCrop: need 0 < scale[0] <= scale[1] <= 1, got {scale}")
        if not (0 < ratio[0] <= ratio[1]):
            raise ValueError(f"RandomResizedCrop: need 0 < ratio[0] <= ratio[1], got {ratio}")
        self.size = _pair(size, "RandomResizedCrop")
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.interpolation, self.antialias, self.generator = interpolation, antialias, generator

    def get_params(self, height: int, width: int) -> tuple[int, int, int, int]:
        """A box (top, left, h, w) inside a ``height`` x ``width`` image."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * _uniform(*self.scale, self.generator)
            aspect = math.exp(_uniform(*log_ratio, self.generator))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(_randint(height - h + 1, self.generator).item())
                left = int(_randint(width - w + 1, self.generator).item())
                return top, left, h, w
        in_ratio = width / height  # fallback: the whole image, cut to the nearest allowed ratio
        if in_ratio < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            h, w = height, int(round(height * self.ratio[1]))
        else:
            h, w = height, width
        return (height - h) // 2, (width - w) // 2, h, w

    def _one(self, x: torch.Tensor) -> torch.Tensor:
        top, left, h, w = self.get_params(*x.shape[-2:])
        return _resize(x[..., top:top + h, left:left + w], self.size, self.interpolation, self.antialias)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check(x, "RandomResizedCrop")
        if x.dim() == 3:
            return self._one(x)
        return torch.stack([self._one(sample) for sample in x])

    def __repr__(self) -> str:
        return f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio})"
