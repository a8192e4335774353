"""BNN+ regularizers and SBNN's expected-connections penalty."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from onebit.nn import BinaryConv2d, BinaryLinear
from onebit.regularizers import (
    BnnPlusRegularizer, ExpectedConnections, add_regularization, binary_layers, bnn_plus_penalty,
    build_regularizers, check_regularizers, connection_ratio,
)


def model(weight_quantizer="ste_sign"):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), BinaryConv2d(4, 6, 3, weight_quantizer=weight_quantizer),
                         nn.Flatten(), BinaryLinear(6, 3, weight_quantizer=weight_quantizer))


@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.floats(-2, 2, allow_nan=False, width=32).filter(lambda v: abs(v) > 1e-3),
                       min_size=1, max_size=20),
       alpha=st.floats(0.05, 1.5), kind=st.sampled_from(["l1", "l2"]))
def test_bnn_plus_penalties_and_gradients(values, alpha, kind):
    w = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    a = torch.tensor(alpha, dtype=torch.float64, requires_grad=True)
    if (w.detach().abs() - alpha).abs().min() < 1e-3:  # away from the kink of R1
        return
    r = bnn_plus_penalty(w, a, kind)
    d = alpha - w.detach().abs()
    s = torch.sign(w.detach())
    if kind == "l1":
        assert r.item() == pytest.approx(d.abs().sum().item())
        gw, ga = -torch.sign(d) * s, torch.sign(d).sum()
    else:
        assert r.item() == pytest.approx((d * d).sum().item())
        gw, ga = -2 * d * s, 2 * d.sum()
    r.backward()
    assert torch.allclose(w.grad, gw) and a.grad.item() == pytest.approx(ga.item())


def test_add_regularization_uses_the_quantizer_scale_or_one():
    m = model("scaled_sign")
    loss = torch.tensor(1.0)
    layers = [layer for _, layer in binary_layers(m)]
    expected = sum(((layer.weight_quantizer.scale_like(layer.weight) - layer.weight.abs()) ** 2).sum()
                   for layer in layers)
    total = add_regularization(loss, m, lam=0.1)
    assert total.item() == pytest.approx(1.0 + 0.1 * expected.item(), rel=1e-5)
    total.backward()
    assert all(layer.weight_quantizer.scale.grad is not None for layer in layers)
    plain = model()
    fixed = sum(((1 - layer.weight.abs()) ** 2).sum() for _, layer in binary_layers(plain))
    assert add_regularization(loss, plain, 1.0).item() == pytest.approx(1.0 + fixed.item(), rel=1e-5)
    with pytest.raises(ValueError, match="lam"):
        add_regularization(loss, plain, -1.0)


def test_bnn_plus_regularizer_owns_alphas_for_layers_without_a_scale():
    m = model("domain_weight")
    reg = BnnPlusRegularizer(m, kind="l1", lam=0.5)
    assert set(reg.alphas) == {"layer0", "layer1"}
    w0 = binary_layers(m)[0][1].weight.detach()
    assert torch.allclose(reg.alphas["layer0"], w0.abs().reshape(6, -1).mean(1))
    loss = torch.tensor(2.0, requires_grad=True)
    total = reg(loss)
    total.backward()
    assert reg.alphas["layer0"].grad is not None and binary_layers(m)[0][1].weight.grad is not None
    assert not BnnPlusRegularizer(model("scaled_sign")).alphas  # uses the quantizer's alpha


def test_connection_ratio_and_its_straight_through_gradient():
    m = model()
    ws = [layer.weight for _, layer in binary_layers(m)]
    n = sum(w.numel() for w in ws)
    p = connection_ratio(m, ste_factor=0.5)
    assert p.item() == pytest.approx(sum((w >= 0).sum().item() for w in ws) / n)
    p.backward()
    assert all(torch.allclose(w.grad, torch.full_like(w, 0.5 / n)) for w in ws)


def test_expected_connections_self_scaling_penalty():
    m = model()
    p = connection_ratio(m).item()
    reg = ExpectedConnections(m, ec=p - 0.2, gamma=0.1)
    task = torch.tensor(3.0)
    pen = reg.penalty(task)
    assert pen.item() == pytest.approx(0.1 / 0.9 * 3.0)  # value: gamma/(1 - gamma) * L_task
    pen.backward()
    ws = [layer.weight for _, layer in binary_layers(m)]
    n = sum(w.numel() for w in ws)
    lam = 0.1 * 3.0 / (0.2 * 0.9)
    assert all(torch.allclose(w.grad, torch.full_like(w, lam * 0.5 / n), rtol=1e-3) for w in ws)
    assert ExpectedConnections(m, ec=min(1.0, p + 0.01)).penalty(task).item() == 0.0  # below target
    assert ExpectedConnections(m, ec=p - 0.2, gamma=0.0).penalty(task).item() == 0.0


def test_expected_connections_drives_sparsity_down():
    m = model("domain_weight")
    reg = ExpectedConnections(m, ec=0.2, gamma=0.5, ste_factor=1.0)
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    start = connection_ratio(m).item()
    for _ in range(30):
        opt.zero_grad()
        reg(torch.tensor(1.0, requires_grad=True)).backward()  # loss + penalty (the penalty is 0 at target)
        opt.step()
    assert start > 0.35 and connection_ratio(m).item() <= 0.2 + 0.02


def test_regularizer_specs_are_validated():
    check_regularizers({"bnn+": {"kind": "l1"}, "expected_connections": {"ec": 0.1, "gamma": 0.02}})
    for spec, match in (({"l3": {}}, "unknown regularizer"), ({"bnn+": {"kind": "l3"}}, "kind"),
                        ({"bnn+": {"lam": -1}}, "lam"), ({"expected_connections": {"ec": 0.0}}, "ec"),
                        ({"expected_connections": {"gamma": 1.0}}, "gamma"),
                        ({"expected_connections": {"gama": 0.1}}, "bad options"), ({"bnn+": 3}, "dict")):
        with pytest.raises(ValueError, match=match):
            check_regularizers(spec)
    reg = build_regularizers({"bnn+": {}, "expected_connections": {"ec": 0.5}}, model("scaled_sign"))
    loss = torch.tensor(1.0)
    assert reg(loss).item() >= 1.0
    with pytest.raises(ValueError, match="binary layers"):
        ExpectedConnections(nn.Linear(2, 2))
