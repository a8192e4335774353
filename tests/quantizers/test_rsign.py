"""RSign (ReActNet): forward sign(x - alpha_c), ApproxSign gradient, threshold gradient, per-channel plumbing."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from onebit import quantizers
from onebit.nn import BinaryConv2d, BinaryLinear
from onebit.quantizers import RSign


def approx_grad(u):
    return torch.clamp(2 - 2 * u.abs(), min=0)


def test_rsign_fixed_points():
    q = RSign(channels=2)
    with torch.no_grad():
        q.threshold.copy_(torch.tensor([0.5, -0.25]))
    x = torch.tensor([[[[0.0, 0.5, 1.0]], [[-0.25, -1.0, 0.0]]]], requires_grad=True)  # (1, 2, 1, 3)
    y = q(x)
    assert y.squeeze().tolist() == [[-1, 1, 1], [1, -1, 1]]  # x = alpha gives sign(0) = +1
    g = torch.tensor([[[[1.0, 2.0, 3.0]], [[0.5, 1.0, 1.5]]]])
    y.backward(g)
    u = x.detach() - torch.tensor([0.5, -0.25]).view(1, 2, 1, 1)
    assert torch.allclose(x.grad, g * approx_grad(u))
    assert torch.allclose(q.threshold.grad, -(g * approx_grad(u)).sum(dim=(0, 2, 3)))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 5), hw=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_rsign_properties(n, c, hw, seed):
    gen = torch.Generator().manual_seed(seed)
    q = RSign(channels=c)
    with torch.no_grad():
        q.threshold.copy_(torch.randn(c, generator=gen))
    x = (torch.randn(n, c, hw, hw, generator=gen) * 2).requires_grad_(True)
    y = q(x)
    alpha = q.threshold.detach().view(1, c, 1, 1)
    assert set(y.unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(y, torch.where(x.detach() - alpha >= 0, 1.0, -1.0))
    g = torch.randn(y.shape, generator=gen)
    y.backward(g)
    expected = g * approx_grad(x.detach() - alpha)
    assert torch.allclose(x.grad, expected, atol=1e-6)
    assert torch.allclose(q.threshold.grad, -expected.sum(dim=(0, 2, 3)), atol=1e-5)


def test_rsign_in_layers_gets_input_channels():
    conv = BinaryConv2d(3, 8, 3, input_quantizer="rsign", weight_quantizer="ste_sign")
    assert conv.input_quantizer.threshold.shape == (3,)
    lin = BinaryLinear(5, 4, input_quantizer={"name": "rsign", "init": 0.1})
    assert torch.allclose(lin.input_quantizer.threshold, torch.full((5,), 0.1))
    assert lin(torch.randn(2, 5)).shape == (2, 4)


def test_rsign_lazy_channels_and_errors():
    q = quantizers.get("rsign")
    assert q.channels is None
    q(torch.randn(2, 6, 3, 3))
    assert q.threshold.shape == (6,)
    import pytest
    with pytest.raises(ValueError, match="6 channels"):
        q(torch.randn(2, 5, 3, 3))
    with pytest.raises(ValueError, match="positive int"):
        RSign(channels=0)
