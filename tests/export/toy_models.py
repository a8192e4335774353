"""Corner-case toy models for converter and engine tests (STYLE.md item 13).

Each builder returns an (N, C, H, W) example input and a model trained for a few steps (so BatchNorm
running statistics are real), then put in eval mode. Covered: zero vs +1 padding, stride 2, groups,
channel counts that are not multiples of 64 (3, 65, 100, 130), negative BN gamma, no activation between
binary layers, residual adds (Bi-Real, ReActNet with RSign/RPReLU, Si-BNN {0,1} activations), concat,
max-pool on bits and on floats, a float stem + binary body + float head, binary linear layers.
"""

from __future__ import annotations

import torch
from torch import nn

import onebit
from onebit.nn import BinaryBasicBlock, BinaryConv2d, BinaryLinear, ReActNetBlock


def _head(c: int, classes: int = 10) -> list[nn.Module]:
    return [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes)]


def _stem(c: int) -> list[nn.Module]:
    return [nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)]


def _train(model: nn.Module, x: torch.Tensor, steps: int = 3) -> nn.Module:
    """A few SGD steps on random targets: BN running stats and weights move off their init."""
    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(steps):
        out = model(x + 0.1 * torch.randn(x.shape, generator=gen))
        loss = (out - torch.randn(out.shape, generator=gen)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def plain_zero_pad():
    """Float stem -> binary convs with zero padding (no activation between: BN folds into thresholds)."""
    return nn.Sequential(*_stem(16), BinaryConv2d(16, 65, 3, padding=1, bias=False), nn.BatchNorm2d(65),
                         BinaryConv2d(65, 100, 3, padding=1, bias=False), nn.BatchNorm2d(100), *_head(100)), (3, 12, 12)


def one_pad_stride2_xnor():
    """+1 padding, stride 2, XNOR scaled weights, conv bias, PReLU between binary layers."""
    return nn.Sequential(*_stem(8), BinaryConv2d(8, 64, 3, stride=2, padding=1, pad_value=1.0,
                                                  weight_quantizer="xnor_weight"),
                         nn.BatchNorm2d(64), nn.PReLU(64),
                         BinaryConv2d(64, 70, 3, stride=2, padding=1, bias=False, pad_value=1.0),
                         nn.BatchNorm2d(70), nn.Hardtanh(), *_head(70)), (3, 16, 16)


def groups():
    """Grouped binary convs, including groups whose channels do not start at a word boundary (65 per group)."""
    return nn.Sequential(*_stem(16), BinaryConv2d(16, 130, 3, padding=1, groups=2, bias=False), nn.BatchNorm2d(130),
                         BinaryConv2d(130, 130, 3, padding=1, groups=2, bias=False), nn.BatchNorm2d(130),
                         BinaryConv2d(130, 20, 1, groups=10, bias=False), nn.BatchNorm2d(20), *_head(20)), (3, 8, 8)


def negative_gamma():
    """BatchNorm with negative gamma in some channels (the threshold flips) and constant channels."""
    model = nn.Sequential(*_stem(16), BinaryConv2d(16, 33, 3, padding=1, bias=False), nn.BatchNorm2d(33),
                          BinaryConv2d(33, 40, 3, padding=1, bias=False), nn.BatchNorm2d(40), *_head(40))

    def after(m):
        with torch.no_grad():
            bn = m[3]
            bn.weight[::2] *= -1
            bn.bias[1] = 1e3      # always +1
            bn.bias[3] = -1e3     # always -1
            bn.weight[5] = 0.0    # constant at beta
    return model, (3, 10, 10), after


def maxpool_bits():
    """Binary conv -> BN -> MaxPool -> binary conv: the pool runs on bits (AND/OR per channel)."""
    return nn.Sequential(*_stem(16), nn.MaxPool2d(2), BinaryConv2d(16, 64, 3, padding=1, bias=False),
                         nn.BatchNorm2d(64), nn.MaxPool2d(3, 2, padding=1),
                         BinaryConv2d(64, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), *_head(32)), (3, 16, 16)


def bireal():
    """Bi-Real blocks: real shortcuts (add), AvgPool + 1x1 conv downsample, ApproxSign."""
    spec = onebit.methods.get("bireal")
    return nn.Sequential(*_stem(32), BinaryBasicBlock(32, 32, 1, spec=spec), BinaryBasicBlock(32, 64, 2, spec=spec),
                         *_head(64)), (3, 12, 12)


def reactnet():
    """ReActNet blocks: RSign thresholds, RPReLU, width doubling by concat."""
    spec = onebit.methods.get("reactnet")
    return nn.Sequential(*_stem(24), ReActNetBlock(24, 48, 2, spec=spec), ReActNetBlock(48, 48, 1, spec=spec),
                         *_head(48)), (3, 12, 12)


def si_bnn():
    """Si-BNN blocks: {0,1} activations (AND mode), BN before the binarizer, conv -> BN -> AvgPool downsample."""
    spec = onebit.methods.get("si-bnn")
    return nn.Sequential(*_stem(16), BinaryBasicBlock(16, 16, 1, spec=spec), BinaryBasicBlock(16, 32, 2, spec=spec),
                         nn.ReLU(), *_head(32)), (3, 8, 8)


def panel_edges():
    """Output channel counts at the AVX2 ntab kernel's 32-column panels and its routing of a short last
    panel (40: 8 left over, 48 / 80: 16, 96: three panels), for the weights packed at engine load."""
    return nn.Sequential(*_stem(16), BinaryConv2d(16, 48, 3, padding=1, bias=False), nn.BatchNorm2d(48),
                         BinaryConv2d(48, 40, 3, padding=1, bias=False), nn.BatchNorm2d(40),
                         BinaryConv2d(40, 96, 3, padding=1, bias=False), nn.BatchNorm2d(96),
                         BinaryConv2d(96, 80, 3, padding=1, bias=False), nn.BatchNorm2d(80), *_head(80)), (3, 6, 6)


def binary_linear():
    """Flatten -> BinaryLinear -> BN1d -> BinaryLinear (bits in between) -> float head."""
    return nn.Sequential(*_stem(8), nn.AvgPool2d(2), nn.Flatten(), BinaryLinear(8 * 4 * 4, 100, bias=False),
                         nn.BatchNorm1d(100), BinaryLinear(100, 65), nn.BatchNorm1d(65), nn.ReLU(),
                         nn.Linear(65, 10)), (3, 8, 8)


CORPUS = {f.__name__: f for f in (plain_zero_pad, one_pad_stride2_xnor, groups, negative_gamma, maxpool_bits,
                                  bireal, reactnet, si_bnn, binary_linear, panel_edges)}


def build(name: str, batch: int = 4, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """The trained, eval-mode toy model ``name`` and a fixed input batch."""
    torch.manual_seed(seed)
    made = CORPUS[name]()
    model, shape = made[0], made[1]
    x = torch.randn(batch, *shape)
    _train(model, x)
    if len(made) == 3:
        made[2](model)
    return model.eval(), x
