"""Si-BNN {0,1} activations: forward H(s(x - b)), the (-0.3, 1.0) window on u, gradients for x, s and b."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from onebit.quantizers import SiHeaviside


def window(u, lo=-0.3, hi=1.0):
    return ((u > lo) & (u < hi)).float()


def test_si_heaviside_fixed_points():
    q = SiHeaviside(channels=1)
    x = torch.tensor([-1.0, -0.3, -0.2, 0.0, 0.5, 0.99, 1.0, 2.0]).view(1, 1, 8).requires_grad_(True)
    y = q(x)
    assert y.flatten().tolist() == [0, 0, 0, 0, 1, 1, 1, 1]  # H(0) = 0
    y.sum().backward()
    # s = 1, b = 0: gradient 1 strictly inside (-0.3, 1.0); both edges are outside
    assert x.grad.flatten().tolist() == [0, 0, 1, 1, 1, 1, 0, 0]


def test_si_heaviside_trainable_window_in_x_units():
    q = SiHeaviside(channels=1)
    with torch.no_grad():
        q.raw_scale.fill_(2.0)
        q.bias.fill_(0.5)
    lo, hi = q.window()
    assert lo.item() == pytest.approx(0.5 - 0.3 / 2) and hi.item() == pytest.approx(0.5 + 1.0 / 2)
    x = torch.tensor([0.3, 0.36, 0.5, 0.6, 0.99, 1.01]).view(1, 1, 6).requires_grad_(True)
    y = q(x)
    assert y.flatten().tolist() == [0, 0, 0, 1, 1, 1]  # threshold b = 0.5; s > 0 does not move it
    y.sum().backward()
    assert x.grad.flatten().tolist() == [0, 2, 2, 2, 2, 0]  # window (0.35, 1.0), scaled by s = 2


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 4), hw=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_si_heaviside_gradients_match_formulas(n, c, hw, seed):
    gen = torch.Generator().manual_seed(seed)
    q = SiHeaviside(channels=c)
    with torch.no_grad():
        q.raw_scale.copy_(torch.rand(c, generator=gen) * 3 - 0.5)  # s may be negative (unconstrained)
        q.bias.copy_(torch.randn(c, generator=gen))
    x = (torch.randn(n, c, hw, hw, generator=gen) * 2).requires_grad_(True)
    y = q(x)
    s, b = q.raw_scale.detach().view(1, c, 1, 1), q.bias.detach().view(1, c, 1, 1)
    u = s * (x.detach() - b)
    assert torch.equal(y, (u > 0).float())
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    g = torch.randn(y.shape, generator=gen)
    y.backward(g)
    gw = g * window(u)
    assert torch.allclose(x.grad, gw * s, atol=1e-6)
    assert torch.allclose(q.raw_scale.grad, (gw * (x.detach() - b)).sum(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(q.bias.grad, -(gw * s).sum(dim=(0, 2, 3)), atol=1e-5)


def test_si_heaviside_positive_scale_option():
    q = SiHeaviside(channels=3, positive_scale=True)
    assert torch.allclose(q.scale, torch.ones(3))
    with torch.no_grad():
        q.raw_scale.fill_(-20.0)
    assert (q.scale > 0).all()
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    q(x).sum().backward()
    assert q.raw_scale.grad is not None


def test_si_heaviside_custom_window_and_errors():
    q = SiHeaviside(channels=1, lower=-0.5, upper=0.5)
    x = torch.tensor([-0.6, -0.4, 0.4, 0.6]).view(1, 1, 4).requires_grad_(True)
    q(x).sum().backward()
    assert x.grad.flatten().tolist() == [0, 1, 1, 0]
    for lower, upper in ((0.1, 1.0), (-0.3, 0.0), (-0.3, math.inf), (1.0, -1.0)):
        with pytest.raises(ValueError, match="window"):
            SiHeaviside(channels=1, lower=lower, upper=upper)


def test_si_heaviside_backward_is_pure():
    q = SiHeaviside(channels=2)
    x = torch.randn(3, 2, 2, 2, requires_grad=True)
    g = torch.ones(3, 2, 2, 2)
    q(x).backward(g)
    assert torch.equal(g, torch.ones(3, 2, 2, 2))
