"""Each method's quantizers, as its config builds them, follow the spec's formulas (fixed points and
Hypothesis), and a binarized model's values lie in the method's domain."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import onebit
from onebit import methods, quantizers
from onebit.nn import QuantizedLayerMixin
from onebit.sparsity import sparsity_report

NAMES = ["bnn", "xnor", "bireal", "reactnet", "si-bnn", "sbnn", "dybnn", "bnn+", "elastic-link"]
FIXED = torch.tensor([-2.0, -1.0, -0.5, -0.2, 0.0, 0.2, 0.5, 0.99, 1.0, 2.0])


def sgn(x):
    return torch.where(x >= 0, 1.0, -1.0)


def ste(x):
    return (x.abs() <= 1).float()


def approx(x):
    return torch.clamp(2 - 2 * x.abs(), min=0)


def signswish(x, beta=5.0):
    return beta * (2 - beta * x * torch.tanh(beta * x / 2)) / (1 + torch.cosh(beta * x))


# forward q(x) and dq/dx of each method's activation binarizer at its initial parameters (methods.md 1.1)
ACTIVATION = {
    "bnn": (sgn, ste), "xnor": (sgn, ste), "bireal": (sgn, approx), "reactnet": (sgn, approx),
    "si-bnn": (lambda x: (x > 0).float(), lambda x: ((x > -0.3) & (x < 1.0)).float()),
    "sbnn": (sgn, approx), "dybnn": (sgn, approx), "bnn+": (sgn, signswish), "elastic-link": (sgn, approx),
}


def act_quantizer(name, channels):
    return quantizers.get(methods.get(name).input_quantizer, channels=channels)


def weight_quantizer(name, w):
    q = quantizers.get(methods.get(name).weight_quantizer, channels=w.shape[0])
    q.init_from_weight(w)
    return q


def expected_weight(name, w, g):
    """(q(w), dL/dw) for upstream gradient g (methods.md 1.2, 2.1-2.4, 3.3, 4.2, 6.3)."""
    s, n = sgn(w), w[0].numel()
    dims = tuple(range(1, w.dim()))
    alpha = w.abs().mean(dim=dims, keepdim=True)
    if name == "bnn":
        return s, g * ste(w)
    if name == "xnor":
        return alpha * s, alpha * g * ste(w) + s / n * (s * g).sum(dim=dims, keepdim=True)
    if name in ("bireal", "reactnet", "dybnn", "elastic-link", "bnn+"):  # detached / trainable alpha
        return alpha * s, alpha * g * ste(w)
    if name == "si-bnn":
        a = w.clamp(-1, 1).abs().mean(dim=dims, keepdim=True)
        return a * s, (1 - 1 / n) * g + s * (s * g).mean(dim=dims, keepdim=True)
    if name == "sbnn":  # tau = 1, phi = 0 at init, identity STE
        return s, g
    raise AssertionError(name)


def run(q, x, g):
    x = x.clone().requires_grad_(True)
    y = q(x)
    y.backward(g)
    return y.detach(), x.grad


@pytest.mark.parametrize("name", NAMES)
def test_activation_binarizer_fixed_points(name):
    fwd, grad = ACTIVATION[name]
    x = FIXED.view(1, 1, -1)
    g = torch.linspace(0.5, 1.5, x.numel()).view_as(x)
    y, gx = run(act_quantizer(name, 1), x, g)
    assert torch.equal(y, fwd(x))
    assert torch.allclose(gx, g * grad(x), atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.1, 3.0))
def test_activation_binarizer_property(name, seed, scale):
    fwd, grad = ACTIVATION[name]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 4, 4, generator=gen) * scale
    g = torch.randn(x.shape, generator=gen)
    q = act_quantizer(name, 3)
    y, gx = run(q, x, g)
    assert torch.equal(y, fwd(x))
    assert set(y.unique().tolist()) <= ({0.0, 1.0} if q.domain == "01" else {-1.0, 1.0})
    assert torch.allclose(gx, g * grad(x), atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=15, deadline=None)
@given(out=st.integers(1, 4), fan_in=st.integers(1, 9), seed=st.integers(0, 2**31 - 1))
def test_weight_binarizer_property(name, out, fan_in, seed):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(out, fan_in, 1, 1, generator=gen) * 0.8
    g = torch.randn(w.shape, generator=gen)
    y, gw = run(weight_quantizer(name, w), w, g)
    ey, eg = expected_weight(name, w, g)
    assert torch.allclose(y, ey, atol=1e-6)
    assert torch.allclose(gw, eg, atol=1e-5)


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 8, 3), nn.BatchNorm2d(8),
                         nn.Conv2d(8, 8, 1), nn.Flatten(), nn.Linear(8 * 3 * 3, 3))


@pytest.mark.parametrize("name", NAMES)
def test_binarized_model_values_lie_in_the_method_domain(name):
    method = methods.get(name)
    model = onebit.binarize_(small_model(), method)
    layers = [m for m in model.modules() if isinstance(m, QuantizedLayerMixin)]
    assert len(layers) == 2  # first conv and last FC stay float
    seen = {}
    hooks = [layer.input_quantizer.register_forward_hook(lambda m, i, o: seen.setdefault(id(m), o)) for layer in layers]
    out = model(torch.randn(2, 1, 7, 7))
    out.sum().backward()
    for h in hooks:
        h.remove()
    for layer in layers:
        acts = set(seen[id(layer.input_quantizer)].unique().tolist())
        assert acts <= ({0.0, 1.0} if name == "si-bnn" else {-1.0, 1.0})
        q = layer.quantized_weight().detach()
        per_row = q.reshape(q.shape[0], -1)
        assert all(row.unique().numel() <= 2 for row in per_row)  # two values per output channel
        if name == "sbnn":
            assert q.unique().numel() <= 2  # one {alpha, beta} pair per layer
        if name == "bnn":
            assert set(q.unique().tolist()) <= {-1.0, 1.0}
        if name in ("xnor", "bireal", "reactnet", "si-bnn", "dybnn", "bnn+", "elastic-link"):
            assert torch.allclose(per_row.abs(), per_row.abs().max(dim=1, keepdim=True).values)  # +-alpha_o
        assert layer.weight.grad is not None
    assert sparsity_report(model).layers  # every method's layers can be reported


def test_binarize_accepts_a_method_name_and_wraps_elastic_links():
    model = onebit.binarize_(small_model(), "elastic-link")
    assert isinstance(model[2], onebit.nn.ElasticLink) and model[2].channel_path == "expand"
    assert isinstance(model[4], onebit.nn.ElasticLink)
    assert model(torch.randn(2, 1, 7, 7)).shape == (2, 3)
    only_1x1 = onebit.binarize_(small_model(), methods.get("elastic-link", elastic_link={"where": "1x1"}))
    assert not isinstance(only_1x1[2], onebit.nn.ElasticLink) and isinstance(only_1x1[4], onebit.nn.ElasticLink)
    assert onebit.get_config(model).method == "elastic-link"


def test_after_step_clips_latent_weights_and_param_groups():
    for name, bound in (("bnn", 1.0), ("si-bnn", 1.0), ("sbnn", 1.5)):
        model = onebit.binarize_(small_model(), name)
        with torch.no_grad():
            model[2].weight.mul_(100)
        methods.get(name).after_step(model)
        assert model[2].weight.abs().max().item() == pytest.approx(bound)
    model = onebit.binarize_(small_model(), "si-bnn")
    groups = methods.param_groups(model, methods.get("si-bnn"), weight_decay=1e-5)
    thresholds = {id(p) for p in model[2].input_quantizer.parameters()}
    assert thresholds and all(id(p) not in thresholds for p in groups[0]["params"])
    react = nn.Sequential(nn.Conv2d(1, 4, 3), onebit.nn.BinaryConvUnit(4, 4, spec=methods.get("reactnet")))
    decayed = {id(p) for p in methods.param_groups(react, "reactnet", 1e-5)[0]["params"]}
    unit = react[1]
    assert id(unit.conv.input_quantizer.threshold) in decayed and id(unit.act.shift_in) in decayed
    assert id(unit.act.slope) not in decayed and id(unit.body[1].weight) not in decayed
    assert id(react[0].weight) in decayed
    with pytest.raises(ValueError, match="rule"):
        methods.param_groups(react, "l2")
    with pytest.raises(ValueError, match="bound"):
        methods.clip_latent_weights_(react, 0)
    assert math.isfinite(sum(p.sum().item() for g in methods.param_groups(react, "all") for p in g["params"]))


@pytest.mark.parametrize("name", NAMES)
def test_block_spec_builds_every_block(name):
    method = methods.get(name)
    for block in (onebit.nn.BinaryBasicBlock(4, 8, 2, spec=method), onebit.nn.ReActNetBlock(4, 8, 2, spec=method),
                  onebit.nn.BinaryBottleneckBlock(8, 8, 1, spec=method, expansion=2)):
        x = torch.randn(2, block_in(block), 6, 6)
        block(x).sum().backward()


def block_in(block):
    return 8 if isinstance(block, onebit.nn.BinaryBottleneckBlock) else 4


def test_regularizer_built_from_method():
    model = onebit.binarize_(small_model(), methods.combine("bnn+", "sbnn"))
    reg = methods.combine("bnn+", "sbnn").regularizer(model)
    assert set(reg.terms) == {"bnn+", "expected_connections"}
    assert list(reg.parameters())  # BNN+ alphas for the domain-weight layers
    loss = torch.tensor(2.0, requires_grad=True)
    assert reg(loss).item() >= 2.0
    assert methods.get("bireal").regularizer(model) is None
