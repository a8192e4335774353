"""Reference bitwise dot products (DESIGN.md section 3 convention) against float dot products."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from onebit import bitdot, bitpack

LENGTHS = [1, 7, 63, 64, 65, 127, 128, 129, 200]


def pm1(shape, gen):
    return torch.where(torch.rand(shape, generator=gen) < 0.5, -1.0, 1.0)


def bits01(shape, gen, p=0.3):
    return (torch.rand(shape, generator=gen) < p).float()


@pytest.mark.parametrize("n", LENGTHS)
def test_dot_products_match_float(n):
    gen = torch.Generator().manual_seed(n)
    a, w = pm1((6, n), gen), pm1((6, n), gen)
    a01, m01 = bits01((6, n), gen), bits01((6, n), gen, 0.1)
    A, W = bitpack.pack(a), bitpack.pack(w)
    A01, M01 = bitpack.pack(a01, mode="heaviside"), bitpack.pack(m01, mode="heaviside")
    assert torch.equal(bitdot.dot_pm1(A, W, n), (a * w).sum(1).long())
    assert torch.equal(bitdot.dot_01_pm1(A01, W), (a01 * w).sum(1).long())  # Si-BNN: AND + popcount
    assert torch.equal(bitdot.dot_pm1_01(A, M01), (a * m01).sum(1).long())
    alpha, beta = 0.75, -0.25
    wd = beta + (alpha - beta) * m01
    assert torch.allclose(bitdot.dot_domain(A, M01, n, alpha, beta), (a * wd).sum(1).double(), atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 300), seed=st.integers(0, 2**31 - 1))
def test_si_bnn_inner_product_property(n, seed):
    gen = torch.Generator().manual_seed(seed)
    a01, w = bits01((3, n), gen, 0.5), pm1((4, n), gen)
    A, W = bitpack.pack(a01, mode="heaviside"), bitpack.pack(w)
    got = bitdot.dot_01_pm1(A[:, None, :], W[None, :, :])  # every activation row with every filter
    assert torch.equal(got, (a01 @ w.T).long())


def test_popcount_and_si_bnn_reexport():
    words = torch.tensor([[0, 1, -1]], dtype=torch.int64).view(torch.uint64)
    assert bitdot.popcount(words).tolist() == [65]
    from onebit.methods.si_bnn import bitwise_dot
    assert bitwise_dot is bitdot.dot_01_pm1
    with pytest.raises(TypeError, match="uint64"):
        bitdot.popcount(torch.zeros(2))
