"""SBNN domain weights tau sign(w) + phi and the closed-form quantizer (checked against brute force)."""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from onebit.nn import BinaryConv2d
from onebit.quantizers import DomainWeight, domain_fit, domain_quantize


def sgn(w):
    return torch.where(w >= 0, 1.0, -1.0)


def sse_for_mask(w, mask):
    ones, zeros = w[mask], w[~mask]
    err = 0.0
    if ones.numel():
        err += ((ones - ones.mean()) ** 2).sum().item()
    if zeros.numel():
        err += ((zeros - zeros.mean()) ** 2).sum().item()
    return err


def test_domain_weight_forward_and_gradients():
    q = DomainWeight()
    with torch.no_grad():
        q.tau.fill_(0.75)
        q.phi.fill_(0.25)
    w = torch.tensor([[-2.0, -0.5, 0.0, 0.5, 2.0]], requires_grad=True)
    y = q(w)
    assert y.tolist() == [[-0.5, -0.5, 1.0, 1.0, 1.0]]  # beta = phi - tau, alpha = phi + tau; sign(0) = +1
    assert [v.item() for v in q.values()] == [1.0, -0.5]
    g = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])
    y.backward(g)
    assert torch.allclose(w.grad, 0.75 * g)  # identity STE times tau
    assert q.tau.grad.item() == pytest.approx((g * sgn(w.detach())).sum().item())
    assert q.phi.grad.item() == pytest.approx(g.sum().item())


@pytest.mark.parametrize("ste, expected", [("identity", [1, 1, 1, 1, 1]), ("clip", [0, 1, 1, 1, 0])])
def test_domain_weight_ste_variants(ste, expected):
    w = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], requires_grad=True)
    DomainWeight(ste=ste)(w).sum().backward()
    assert w.grad.tolist() == expected


def test_domain_weight_ede_ste():
    t = 2.0
    w = torch.linspace(-2, 2, 9, requires_grad=True)
    DomainWeight(ste="ede", t=t)(w).sum().backward()
    assert torch.allclose(w.grad, t * (1 - torch.tanh(t * w.detach()) ** 2))  # k = max(1, 1/t) = 1


@settings(max_examples=30, deadline=None)
@given(shape=st.sampled_from([(3, 4), (2, 3, 2, 2), (5, 1)]), seed=st.integers(0, 2**31 - 1))
def test_domain_weight_outputs_lie_in_the_domain(shape, seed):
    gen = torch.Generator().manual_seed(seed)
    q = DomainWeight()
    with torch.no_grad():
        q.tau.copy_(torch.rand((), generator=gen) + 0.1)
        q.phi.copy_(torch.randn((), generator=gen))
    w = torch.randn(shape, generator=gen)
    y = q(w)
    alpha, beta = (v.detach() for v in q.values())
    assert torch.equal(y.detach(), torch.where(w >= 0, alpha, beta))


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.floats(-3, 3, allow_nan=False, width=32), min_size=1, max_size=8))
def test_closed_form_matches_brute_force(values):
    w = torch.tensor(values, dtype=torch.float64)
    n = w.numel()
    best_free = min(sse_for_mask(w, torch.tensor(bits, dtype=torch.bool))
                    for bits in itertools.product([False, True], repeat=n))
    fit = domain_quantize(w)
    assert fit.error.item() == pytest.approx(best_free, abs=1e-9)
    assert ((w - fit.values) ** 2).sum().item() == pytest.approx(best_free, abs=1e-9)
    assert fit.alpha >= fit.beta
    for k in range(n + 1):  # fixed number of alpha-bits, alpha >= beta
        candidates = []
        for ones in itertools.combinations(range(n), k):
            mask = torch.zeros(n, dtype=torch.bool)
            mask[list(ones)] = True
            if k in (0, n) or w[mask].mean() >= w[~mask].mean():
                candidates.append(sse_for_mask(w, mask))
        fit = domain_quantize(w, density=k / n)
        assert int(fit.mask.sum()) == k
        assert fit.error.item() == pytest.approx(min(candidates), abs=1e-9)


def test_domain_fit_is_least_squares_for_a_fixed_assignment():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(50, generator=gen, dtype=torch.float64)
    fit = domain_fit(w)  # mask = sign(w) = +1
    assert torch.equal(fit.mask, w >= 0)
    assert fit.alpha.item() == pytest.approx(w[w >= 0].mean().item())
    assert fit.beta.item() == pytest.approx(w[w < 0].mean().item())
    # no other pair (alpha, beta) on a grid does better
    for da, db in itertools.product([-0.01, 0.0, 0.01], repeat=2):
        values = torch.where(fit.mask, fit.alpha + da, fit.beta + db)
        assert ((w - values) ** 2).sum() >= fit.error - 1e-12
    # tau/phi form: least-squares line of w on s = sign(w)
    s = torch.where(fit.mask, 1.0, -1.0).double()
    tau = ((w - w.mean()) * (s - s.mean())).mean() / s.var(unbiased=False)
    assert fit.tau.item() == pytest.approx(tau.item())
    assert fit.phi.item() == pytest.approx((w.mean() - tau * s.mean()).item())


def test_closed_form_init_from_the_layer_weight():
    conv = BinaryConv2d(4, 3, 3, input_quantizer=None, weight_quantizer={"name": "domain_weight", "init": "closed_form"})
    w = conv.weight.detach()
    alpha, beta = conv.weight_quantizer.values()
    assert alpha.item() == pytest.approx(w[w >= 0].mean().item(), rel=1e-5)
    assert beta.item() == pytest.approx(w[w < 0].mean().item(), rel=1e-5)
    default = BinaryConv2d(4, 3, 3, weight_quantizer="domain_weight")
    assert default.weight_quantizer.tau.item() == 1.0 and default.weight_quantizer.phi.item() == 0.0


def test_domain_errors():
    with pytest.raises(ValueError, match="ste"):
        DomainWeight(ste="tanh")
    with pytest.raises(ValueError, match="init"):
        DomainWeight(init="random")
    with pytest.raises(ValueError, match="density"):
        domain_quantize(torch.randn(4), density=1.5)
    with pytest.raises(ValueError, match="t must be"):
        DomainWeight(t=0.0)
    assert math.isfinite(domain_quantize(torch.ones(3)).error.item())


def test_sparse_domain_beta_zero():
    """beta="zero": w_q in {0, 2 tau}, tau gets sum g (sign + 1), phi is unused; closed-form init and
    set_values respect beta = 0; the option round-trips through the config."""
    import torch

    from onebit.quantizers import DomainWeight
    from onebit.quantizers import get as build_quantizer

    q = DomainWeight(beta="zero")
    w = torch.tensor([-0.5, 0.0, 0.3, -0.1], requires_grad=True)
    with torch.no_grad():
        q.tau.fill_(0.75)
    y = q(w)
    assert torch.equal(y.detach(), torch.tensor([0.0, 1.5, 1.5, 0.0]))
    y.sum().backward()
    assert q.tau.grad.item() == 4.0 and q.phi.grad is None
    assert [v.item() for v in q.values()] == [1.5, 0.0]
    with pytest.raises(ValueError, match="beta = 0"):
        q.set_values(1.0, -1.0)
    q2 = DomainWeight(init="closed_form", beta="zero")
    q2.init_from_weight(torch.tensor([-1.0, 0.2, 0.4]))
    assert q2.values()[0].item() == pytest.approx(0.3) and q2.values()[1].item() == 0.0
    again = build_quantizer(q.to_config())
    assert isinstance(again, DomainWeight) and again.beta_zero
    with pytest.raises(ValueError, match="beta must be"):
        DomainWeight(beta="one")
