"""BNN+ weights: alpha sign(w) with trainable alpha per filter or per layer."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from onebit.nn import BinaryConv2d, BinaryLinear
from onebit.quantizers import ScaledSign


def test_scaled_sign_forward_and_gradients():
    q = ScaledSign(channels=2)
    with torch.no_grad():
        q.scale.copy_(torch.tensor([0.5, 2.0]))
    w = torch.tensor([[-2.0, 0.0, 0.5], [0.3, -0.9, 1.5]], requires_grad=True)
    y = q(w)
    assert y.tolist() == [[-0.5, 0.5, 0.5], [2.0, -2.0, 2.0]]
    g = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    y.backward(g)
    mask = (w.detach().abs() <= 1).float()
    assert torch.allclose(w.grad, torch.tensor([[0.5], [2.0]]) * g * mask)
    s = torch.where(w.detach() >= 0, 1.0, -1.0)
    assert torch.allclose(q.scale.grad, (g * s).sum(dim=1))


@settings(max_examples=30, deadline=None)
@given(out=st.integers(1, 5), fan_in=st.integers(1, 10), layer=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_scaled_sign_domain(out, fan_in, layer, seed):
    w = torch.randn(out, fan_in, generator=torch.Generator().manual_seed(seed))
    q = ScaledSign(channels=out, granularity="layer" if layer else "channel")
    q.init_from_weight(w)
    y = q(w)
    alpha = w.abs().mean() * torch.ones(out, 1) if layer else w.abs().mean(dim=1, keepdim=True)
    assert torch.allclose(y, alpha * torch.where(w >= 0, 1.0, -1.0), atol=1e-6)


def test_scaled_sign_init_in_layers():
    conv = BinaryConv2d(3, 5, 3, weight_quantizer="scaled_sign")
    assert torch.allclose(conv.weight_quantizer.scale, conv.weight.detach().abs().mean(dim=(1, 2, 3)))
    lin = BinaryLinear(4, 6, weight_quantizer={"name": "scaled_sign", "granularity": "layer"})
    assert lin.weight_quantizer.scale.shape == ()
    assert lin.weight_quantizer.scale.item() == pytest.approx(lin.weight.detach().abs().mean().item())
    ones = BinaryConv2d(3, 5, 3, weight_quantizer={"name": "scaled_sign", "init": "ones"})
    assert torch.equal(ones.weight_quantizer.scale, torch.ones(5))


def test_scaled_sign_from_float_initialises_from_the_float_weight():
    conv = torch.nn.Conv2d(2, 4, 3)
    with torch.no_grad():
        conv.weight.mul_(10)
    b = BinaryConv2d.from_float(conv, weight_quantizer="scaled_sign")
    assert torch.allclose(b.weight_quantizer.scale, conv.weight.detach().abs().mean(dim=(1, 2, 3)))


def test_scaled_sign_errors():
    with pytest.raises(ValueError, match="granularity"):
        ScaledSign(channels=2, granularity="tensor")
    with pytest.raises(ValueError, match="clip_value"):
        ScaledSign(channels=2, clip_value=0)
    with pytest.raises(ValueError, match="init"):
        ScaledSign(channels=2, init="xavier")
