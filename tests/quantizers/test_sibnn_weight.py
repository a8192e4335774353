"""Si-BNN weights: alpha_o sign(w) with alpha from clamp(w, -1, 1); the code and autograd gradient rules."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from onebit.quantizers import SiBnnWeight


def sgn(w):
    return torch.where(w >= 0, 1.0, -1.0)


def test_sibnn_weight_fixed_points():
    w = torch.tensor([[0.5, -1.5, 0.0, 2.0], [-0.2, -0.2, 0.4, 0.2]], requires_grad=True)
    y = SiBnnWeight()(w)
    alpha = torch.tensor([[(0.5 + 1 + 0 + 1) / 4], [0.25]])  # mean |clamp(w, -1, 1)|
    assert torch.allclose(y, alpha * sgn(w.detach()))
    g = torch.tensor([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 0.0, 2.0]])
    y.backward(g)
    s = sgn(w.detach())
    expected = (1 - 1 / 4) * g + s * (s * g).mean(dim=1, keepdim=True)  # the authors' rule
    assert torch.allclose(w.grad, expected)


@settings(max_examples=30, deadline=None)
@given(out=st.integers(1, 5), fan_in=st.integers(1, 12), gradient=st.sampled_from(["code", "autograd"]),
       seed=st.integers(0, 2**31 - 1))
def test_sibnn_weight_properties(out, fan_in, gradient, seed):
    gen = torch.Generator().manual_seed(seed)
    w = (torch.randn(out, fan_in, 1, 1, generator=gen) * 0.7).requires_grad_(True)
    y = SiBnnWeight(gradient)(w)
    alpha = w.detach().clamp(-1, 1).abs().mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(y.abs(), alpha.expand_as(y))
    assert torch.equal(torch.sign(y) * torch.sign(alpha), sgn(w.detach()) * torch.sign(alpha))
    g = torch.randn(y.shape, generator=gen)
    y.backward(g)
    s, n = sgn(w.detach()), fan_in
    first = (1 - 1 / n) * g if gradient == "code" else alpha * g
    assert torch.allclose(w.grad, first + s * (s * g).mean(dim=(1, 2, 3), keepdim=True), atol=1e-6)


def test_sibnn_weight_errors():
    with pytest.raises(ValueError, match="gradient"):
        SiBnnWeight("exact")
    with pytest.raises(ValueError, match="output-channel"):
        SiBnnWeight()(torch.randn(4))
