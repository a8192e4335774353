"""Shared helpers for the method tests: a Fashion-MNIST slice, small models, a tiny training loop."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import onebit
from onebit.nn import BinaryBasicBlock, ReActNetBlock

FASHION_ROOT = Path("/usr/share/datasets/fashion-mnist")
MEAN, STD = 0.2860, 0.3530


def _read_idx_prefix(path: Path, count: int, header: int, item: tuple[int, ...]) -> np.ndarray:
    with gzip.open(path) as f:
        f.read(header)
        data = f.read(count * int(np.prod(item, dtype=np.int64)))
    return np.frombuffer(data, dtype=np.uint8).reshape(count, *item).copy()


def fashion_slice(n: int = 2000, size: int = 14, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` Fashion-MNIST images (standardized, average-pooled to ``size``) and labels."""
    try:
        from onebit.data import fashion_mnist
    except ImportError:
        fashion_mnist = None
    if fashion_mnist is not None:
        try:
            ds = fashion_mnist(split)
        except FileNotFoundError as exc:
            pytest.skip(f"Fashion-MNIST is not installed: {exc}")
        x, y = ds.tensors[0][:n].clone(), ds.tensors[1][:n].clone()
    else:
        prefix = "train" if split == "train" else "t10k"
        images, labels = FASHION_ROOT / f"{prefix}-images-idx3-ubyte.gz", FASHION_ROOT / f"{prefix}-labels-idx1-ubyte.gz"
        if not (images.is_file() and labels.is_file()):
            pytest.skip(f"Fashion-MNIST idx files not found in {FASHION_ROOT} (Debian package dataset-fashion-mnist)")
        x = (torch.from_numpy(_read_idx_prefix(images, n, 16, (1, 28, 28))).float() / 255.0 - MEAN) / STD
        y = torch.from_numpy(_read_idx_prefix(labels, n, 8, ())).long()
    if size != 28:
        x = F.adaptive_avg_pool2d(x, size)
    return x, y


def plain_cnn(width: int = 8) -> nn.Sequential:
    """A float CNN whose middle convs ``binarize_`` swaps (first conv and last FC stay float).

    BN directly before each binarized conv, no ReLU (a ReLU would make sign() constant)."""
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
        nn.Conv2d(width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.MaxPool2d(2),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 10))


def block_net(method, block: str = "basic", width: int = 8) -> nn.Sequential:
    """Float stem, two method blocks (basic or ReActNet), float head."""
    cls = {"basic": BinaryBasicBlock, "reactnet": ReActNetBlock}[block]
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
        cls(width, width, 1, spec=method), cls(width, 2 * width, 2, spec=method),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 10))


def train(model: nn.Module, method, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float = 5e-3,
          batch: int = 64, seed: int = 0) -> list[float]:
    """Adam on random batches with the method's regularizers and latent clipping; the task losses."""
    reg = method.regularizer(model)
    params = list(model.parameters()) + (list(reg.parameters()) if reg is not None else [])
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (batch,), generator=gen)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        total = reg(loss) if reg is not None else loss
        opt.zero_grad()
        total.backward()
        opt.step()
        method.after_step(model)
        losses.append(loss.item())
    return losses


def build(name_or_combo):
    """A method from a name or a tuple of names (combined)."""
    if isinstance(name_or_combo, tuple):
        return onebit.methods.combine(*name_or_combo)
    return onebit.methods.get(name_or_combo)
