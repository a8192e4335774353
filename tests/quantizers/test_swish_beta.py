"""BNN+ SignSwish with trainable and scheduled beta; EDE (IR-Net) used by SBNN."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from onebit.nn import BinaryConv2d
from onebit.quantizers import (
    EdeSign, LearnableSwishSign, SwishSign, beta_schedule, ede_t, set_ede_t_, set_swish_beta_, swish_sign_grad,
)


def signswish(x, beta):
    s = torch.sigmoid(beta * x)
    return 2 * s * (1 + beta * x * (1 - s)) - 1


@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.floats(-3, 3, allow_nan=False, width=32), min_size=1, max_size=32),
       beta=st.floats(0.5, 8.0))
def test_learnable_swish_gradients_are_those_of_the_surrogate(values, beta):
    x = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    q = LearnableSwishSign(beta).double()
    y = q(x)
    assert torch.equal(y.detach(), torch.where(x.detach() >= 0, 1.0, -1.0).double())
    g = torch.linspace(0.5, 1.5, x.numel(), dtype=torch.float64)
    y.backward(g)
    # d/dx and d/dbeta of SS_beta(x), by autograd on the smooth surrogate
    xs = x.detach().clone().requires_grad_(True)
    b = q.beta.detach().clone().requires_grad_(True)  # beta as stored (float32-rounded)
    (signswish(xs, b) * g).sum().backward()
    assert torch.allclose(x.grad, xs.grad, atol=1e-9)
    assert q.beta.grad.item() == pytest.approx(b.grad.item(), abs=1e-8)
    assert torch.allclose(x.grad, g * swish_sign_grad(x.detach(), b.detach()), atol=1e-9)


def test_beta_schedule_and_setter():
    assert beta_schedule(0, 10, 1.0, 5.0) == 1.0 and beta_schedule(10, 10, 1.0, 5.0) == 5.0
    assert beta_schedule(5, 10, 1.0, 5.0) == pytest.approx(3.0)
    assert beta_schedule(5, 10, 1.0, 4.0, kind="exp") == pytest.approx(2.0)
    assert beta_schedule(7, 10, 2.0, 9.0, kind="constant") == 2.0
    model = torch.nn.Sequential(BinaryConv2d(2, 2, 1, input_quantizer="swish_sign"),
                                BinaryConv2d(2, 2, 1, input_quantizer="learnable_swish_sign"))
    assert set_swish_beta_(model, 3.5) == 2
    assert model[0].input_quantizer.beta == 3.5 and model[1].input_quantizer.beta.item() == 3.5
    with pytest.raises(ValueError, match="kind"):
        beta_schedule(0, 10, kind="cosine")
    with pytest.raises(ValueError, match="> 0"):
        beta_schedule(0, 10, start=0.0)
    with pytest.raises(ValueError, match="> 0"):
        LearnableSwishSign(-1.0)
    assert isinstance(SwishSign(), SwishSign)


def test_ede_gradient_and_schedule():
    for t in (0.1, 1.0, 10.0):
        x = torch.linspace(-2, 2, 21, requires_grad=True)
        y = EdeSign(t)(x)
        assert set(y.unique().tolist()) <= {-1.0, 1.0}
        y.sum().backward()
        k = max(1.0, 1.0 / t)
        assert torch.allclose(x.grad, k * t * (1 - torch.tanh(t * x.detach()) ** 2))
    assert ede_t(0, 10) == pytest.approx(0.1) and ede_t(10, 10) == pytest.approx(10.0)
    assert ede_t(5, 10) == pytest.approx(1.0)
    assert ede_t(1, 4, 1e-3, 10) == pytest.approx(10 ** (-3 + 4 / 4))
    model = torch.nn.Sequential(BinaryConv2d(2, 2, 1, input_quantizer="ede_sign",
                                             weight_quantizer={"name": "domain_weight", "ste": "ede"}))
    assert set_ede_t_(model, 2.5) == 2
    assert model[0].input_quantizer.t == 2.5 and model[0].weight_quantizer.t == 2.5
    with pytest.raises(ValueError):
        ede_t(11, 10)
    assert math.isfinite(ede_t(3, 10))
