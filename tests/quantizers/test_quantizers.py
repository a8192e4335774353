"""Quantizers: forward domain, pseudo-gradients at fixed points and as properties, registry."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from onebit import quantizers
from onebit.quantizers import ApproxSign, SteHeaviside, SteSign, SwishSign, XnorWeight

FIXED = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])


def forward_and_grad(q, x):
    x = x.clone().requires_grad_(True)
    y = q(x)
    upstream = torch.linspace(0.5, 1.5, x.numel()).reshape(x.shape)  # non-uniform: catches mixing
    y.backward(upstream)
    return y.detach(), x.grad / upstream


def floats(lo=-4.0, hi=4.0):
    return st.lists(st.floats(lo, hi, allow_nan=False, width=32), min_size=1, max_size=64)


# ---- fixed points -----------------------------------------------------------------------------

def test_ste_sign_fixed_points():
    y, g = forward_and_grad(SteSign(), FIXED)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1]
    assert g.tolist() == [0, 1, 1, 1, 1, 1, 0]
    _, g = forward_and_grad(SteSign(clip_value=None), FIXED)
    assert g.tolist() == [1] * 7
    _, g = forward_and_grad(SteSign(clip_value=0.5), FIXED)
    assert g.tolist() == [0, 0, 1, 1, 1, 0, 0]


def test_approx_sign_fixed_points():
    y, g = forward_and_grad(ApproxSign(), FIXED)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1]
    assert torch.allclose(g, torch.tensor([0.0, 0.0, 1.0, 2.0, 1.0, 0.0, 0.0]))


def test_swish_sign_fixed_points():
    beta = 5.0
    y, g = forward_and_grad(SwishSign(beta), FIXED)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1]
    expected = [beta * (2 - beta * x * math.tanh(beta * x / 2)) / (1 + math.cosh(beta * x)) for x in FIXED.tolist()]
    assert torch.allclose(g, torch.tensor(expected), atol=1e-6)
    assert g[3] == pytest.approx(beta)  # peak at 0 is beta


def test_swish_sign_gradient_is_derivative_of_signswish():
    beta = 2.5
    x = torch.linspace(-3, 3, 101, dtype=torch.float64, requires_grad=True)
    s = torch.sigmoid(beta * x)
    (2 * s * (1 + beta * x * (1 - s)) - 1).sum().backward()
    assert torch.allclose(quantizers.swish_sign_grad(x.detach(), beta), x.grad, atol=1e-10)


def test_ste_heaviside_fixed_points():
    y, g = forward_and_grad(SteHeaviside(), FIXED)
    assert y.tolist() == [0, 0, 0, 0, 1, 1, 1]  # H(0) = 0
    assert g.tolist() == [0, 1, 1, 1, 1, 1, 0]


def test_xnor_weight_forward_and_gradient():
    w = torch.tensor([[0.5, -1.5, 0.0, 2.0], [-0.2, -0.2, 0.4, 0.2]])
    alpha = w.abs().mean(dim=1, keepdim=True)
    y, _ = forward_and_grad(XnorWeight(), w)
    assert torch.allclose(y, alpha * torch.tensor([[1.0, -1, 1, 1], [-1, -1, 1, 1]]))
    # gradient formula: alpha * g * 1[|w| <= 1] + sign(w) / n * sum_j sign(w_j) g_j
    x = w.clone().requires_grad_(True)
    g = torch.randn_like(w)
    XnorWeight()(x).backward(g)
    s = torch.where(w >= 0, 1.0, -1.0)
    expected = alpha * g * (w.abs() <= 1).float() + s / 4 * (s * g).sum(dim=1, keepdim=True)
    assert torch.allclose(x.grad, expected, atol=1e-6)
    x.grad = None
    XnorWeight(detach_scale=True)(x).backward(g)
    assert torch.allclose(x.grad, alpha * g * (w.abs() <= 1).float())


def test_xnor_weight_gradient_matches_autograd_of_the_forward():
    # Away from the sign discontinuity and inside the clip range, the custom backward is the true
    # derivative of alpha * s with s held fixed plus the STE term: check with double-precision autograd.
    w = torch.tensor([[0.3, -0.7, 0.2], [0.9, 0.1, -0.4]], dtype=torch.float64)
    g = torch.randn_like(w)
    x = w.clone().requires_grad_(True)
    XnorWeight()(x).backward(g)
    x2 = w.clone().requires_grad_(True)
    s = torch.where(w >= 0, 1.0, -1.0).double()
    (x2.abs().mean(dim=1, keepdim=True) * (s + x2 - x2.detach())).backward(g)  # STE: ds/dw = 1
    assert torch.allclose(x.grad, x2.grad)


# ---- properties ---------------------------------------------------------------------------------

PM1 = [("ste_sign", lambda x: (x.abs() <= 1).float()),
       ("approx_sign", lambda x: torch.clamp(2 - 2 * x.abs(), min=0)),
       ("swish_sign", lambda x: quantizers.swish_sign_grad(x, 5.0))]


@pytest.mark.parametrize("name,grad_formula", PM1)
@settings(max_examples=50, deadline=None)
@given(values=floats())
def test_pm1_quantizers_properties(name, grad_formula, values):
    x = torch.tensor(values)
    y, g = forward_and_grad(quantizers.get(name), x)
    assert set(y.unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(y, torch.where(x >= 0, 1.0, -1.0))  # sign agrees with the input, sign(0) = +1
    assert torch.allclose(g, grad_formula(x), atol=1e-5)
    if name != "swish_sign":  # swish has unbounded support; the others vanish outside |x| <= 1
        assert torch.all(g[x.abs() > 1] == 0)


@settings(max_examples=50, deadline=None)
@given(values=floats(), clip=st.floats(0.1, 3.0))
def test_ste_heaviside_properties(values, clip):
    x = torch.tensor(values)
    y, g = forward_and_grad(SteHeaviside(clip_value=clip), x)
    assert torch.equal(y, (x > 0).float())
    assert torch.equal(g, (x.abs() <= clip).float())


@settings(max_examples=30, deadline=None)
@given(out=st.integers(1, 6), fan_in=st.integers(1, 20), seed=st.integers(0, 2**31 - 1))
def test_xnor_weight_properties(out, fan_in, seed):
    w = torch.randn(out, fan_in, generator=torch.Generator().manual_seed(seed))
    y = XnorWeight()(w)
    alpha = w.abs().mean(dim=1, keepdim=True)
    assert torch.allclose(y.abs(), alpha.expand_as(y))  # values in {-alpha_o, +alpha_o}
    assert torch.equal(torch.sign(y), torch.where(w >= 0, 1.0, -1.0) * torch.sign(alpha))


def test_backward_does_not_mutate_grad_output():
    for name in quantizers.list():
        x = torch.randn(4, 5, requires_grad=True)
        g = torch.ones(4, 5)
        quantizers.get(name)(x).backward(g)
        assert torch.equal(g, torch.ones(4, 5)), name


# ---- registry ------------------------------------------------------------------------------------

def test_list_and_get_forms():
    assert {"approx_sign", "ste_heaviside", "ste_sign", "swish_sign", "xnor_weight"} <= set(quantizers.list())
    assert quantizers.list() == sorted(quantizers.list())
    assert quantizers.get(None) is None
    assert isinstance(quantizers.get("ste_sign"), SteSign)
    q = quantizers.get({"name": "swish_sign", "beta": 3.0})
    assert isinstance(q, SwishSign) and q.beta == 3.0
    inst = ApproxSign()
    assert quantizers.get(inst) is inst
    assert quantizers.get(q.to_config()).hparams() == q.hparams()
    for name in quantizers.list():
        assert quantizers.get(name).precision == 1


def test_get_errors_list_valid_names():
    with pytest.raises(ValueError, match="ste_sign"):
        quantizers.get("no_such_quantizer")
    with pytest.raises(ValueError, match="name"):
        quantizers.get({"beta": 1.0})
    with pytest.raises(ValueError, match="bad hyper-parameters"):
        quantizers.get({"name": "ste_sign", "betta": 1.0})
    with pytest.raises(ValueError):
        quantizers.get(3.5)


@pytest.mark.parametrize("spec", [{"name": "ste_sign", "clip_value": 0}, {"name": "swish_sign", "beta": -1},
                                  {"name": "ste_heaviside", "clip_value": -2}, {"name": "xnor_weight", "clip_value": 0}])
def test_invalid_hyper_parameters(spec):
    with pytest.raises(ValueError, match="must be > 0"):
        quantizers.get(spec)
