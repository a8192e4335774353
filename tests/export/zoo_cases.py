"""Zoo models for converter/engine tests: tiny widths, random-but-real parameters and BatchNorm statistics.

``build(name, method)`` returns an eval-mode model and an input batch. Instead of training (slow, and
SBNN's identity STE can diverge in a few large steps) every parameter gets noise, so zero-initialised
ones (RSign/RPReLU shifts, DyBNN's FC2, Elastic-Link gates, SBNN's phi) move off their init, and
BatchNorm running statistics are the statistics of the batch itself (one train-mode forward with
cumulative averaging), so BatchNorm is real and signs before binarizers are balanced.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

import onebit

#: the baseline methods of issue 5 (None = the float model) and the methods of issue 6
BASELINES = (None, "bnn", "xnor", "bireal", "reactnet", "si-bnn", "bnn+")
ISSUE6 = ("dybnn", "elastic-link", "sbnn")


def cases(methods) -> list[tuple[str, str | None]]:
    """(model, method) pairs for every registered model and each applicable method."""
    return [(name, m) for name in onebit.models.list() for m in methods
            if m is None or m in onebit.models.model_info(name).methods]


def tiny_kwargs(name: str) -> dict:
    params = inspect.signature(onebit.models.model_info(name).fn).parameters
    if "width_mult" in params:
        return {"width_mult": 0.125}
    return {"width": 8} if "width" in params else {}


@torch.no_grad()
def randomize_(model: nn.Module, x: torch.Tensor, seed: int = 0, noise: float = 0.1) -> nn.Module:
    """Perturb every parameter, then set BatchNorm statistics from a batch of 16 like ``x`` (a small
    batch would give near-zero variances: huge BatchNorm scales that amplify float rounding); returns
    the eval-mode model."""
    gen = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.add_(noise * torch.randn(p.shape, generator=gen) * max(1.0, float(p.abs().mean())))
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None          # cumulative average: after one batch, that batch's statistics
    model.train()
    model(torch.randn((16, *x.shape[1:]), generator=gen))
    for bn in bns:
        bn.momentum = 0.1
    return model.eval()


@torch.no_grad()
def near_tie(model: nn.Module, x: torch.Tensor, rel: float = 2e-5) -> bool:
    """True if some binarizer input lies within ``rel`` (of its tensor's largest magnitude) of flipping.

    PyTorch's float kernels (and ours) round differently by a few ulps; a value that close to its
    threshold may legitimately binarize differently, so the tests draw inputs without such ties.
    """
    from onebit.quantizers import Quantizer

    seen: list[tuple[nn.Module, torch.Tensor]] = []
    hooks = [m.register_forward_hook(lambda mod, i, o: seen.append((mod, i[0])))
             for n, m in model.named_modules() if n.endswith("input_quantizer") and isinstance(m, Quantizer)]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    for q, xin in seen:
        d = rel * xin.abs().max().clamp_min(1e-6)
        if not (torch.equal(q(xin + d), q(xin)) and torch.equal(q(xin - d), q(xin))):
            return True
    return False


def build(name: str, method, *, full: bool = False, batch: int = 2, seed: int = 0):
    """(eval-mode model, input) for zoo model ``name`` with ``method``; tiny unless ``full``. A tiny
    model's input is the first of a few seeded draws without a near-tie at any binarizer (:func:`near_tie`);
    a full-size model always has some (its tests steer past them: steering.py), so it takes the first draw."""
    info = onebit.models.model_info(name)
    torch.manual_seed(seed)
    kwargs = {} if full else tiny_kwargs(name)
    model = onebit.models.create(name, num_classes=10, in_chans=info.input_size[0], method=method, **kwargs)
    size = info.input_size[1] if full else info.small_size
    shape = (batch, info.input_size[0], size, size)
    model = randomize_(model, torch.empty(shape), seed)
    for k in range(10):
        x = torch.randn(shape, generator=torch.Generator().manual_seed(1000 * seed + k))
        if method is None or full or not near_tie(model, x):
            break
    return model, x
