"""DySign (DyBNN): thresholds from a hyper function of the input, ApproxSign gradient into x and the head."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from onebit.nn import BinaryConv2d
from onebit.quantizers import ChannelHyperFunction, DySign, global_pool


def randomize_(q, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in q.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return q


def test_dysign_starts_as_rsign_at_zero():
    q = DySign(channels=8, reduction=4)
    x = torch.randn(3, 8, 5, 5)
    assert torch.equal(q.thresholds(x), torch.zeros(3, 8))
    assert torch.equal(q(x), torch.where(x >= 0, 1.0, -1.0))


def test_dysign_thresholds_change_with_the_input():
    q = randomize_(DySign(channels=8, reduction=2))
    x1, x2 = torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4) + 1.0
    a1, a2 = q.thresholds(x1), q.thresholds(x2)
    assert not torch.allclose(a1, a2)
    batch = q.thresholds(torch.cat([x1, x2]))  # per sample
    assert torch.allclose(batch, torch.cat([a1, a2]), atol=1e-6)


def test_dysign_thresholds_follow_the_hyper_function_formula():
    q = randomize_(DySign(channels=6, reduction=3), seed=1)
    x = torch.randn(2, 6, 3, 3)
    h = q.hyper
    z = x.mean(dim=(2, 3))
    expected = h.fc2.weight @ torch.relu(h.fc1.weight @ z.T + h.fc1.bias[:, None]) + h.fc2.bias[:, None]
    assert torch.allclose(q.thresholds(x), expected.T, atol=1e-6)
    tanh = randomize_(DySign(channels=6, reduction=3, bound="tanh"), seed=1)
    assert torch.allclose(tanh.thresholds(x), torch.tanh(expected.T), atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 6), hw=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_dysign_forward_and_gradient_against_formula(n, c, hw, seed):
    q = randomize_(DySign(channels=c, reduction=2, detach_input=True), seed=seed % 1000)
    x = torch.randn(n, c, hw, hw, generator=torch.Generator().manual_seed(seed)).requires_grad_(True)
    y = q(x)
    alpha = q.thresholds(x).detach()[:, :, None, None]
    assert torch.equal(y, torch.where(x.detach() - alpha >= 0, 1.0, -1.0))
    y.sum().backward()
    # with detach_input the only path into x is the direct one: ApproxSign'(x - alpha)
    assert torch.allclose(x.grad, torch.clamp(2 - 2 * (x.detach() - alpha).abs(), min=0), atol=1e-6)


def test_dysign_gradient_reaches_the_hyper_function_and_the_pooled_input():
    q = randomize_(DySign(channels=4, reduction=2))
    with torch.no_grad():
        q.hyper.fc1.bias.fill_(1.0)  # keep both hidden units active, so every parameter gets a gradient
    # a fixed input: with the global RNG the result depended on which tests ran before
    x = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    q(x).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in q.hyper.parameters())
    direct = torch.clamp(2 - 2 * (x.detach() - q.thresholds(x).detach()[:, :, None, None]).abs(), min=0)
    assert not torch.allclose(x.grad, direct)  # the pooled path adds to the direct one


def test_dysign_in_a_layer_and_errors():
    conv = BinaryConv2d(16, 4, 3, input_quantizer={"name": "dysign", "reduction": 4})
    assert conv.input_quantizer.hyper.fc1.in_features == 16 and conv.input_quantizer.hyper.fc1.out_features == 4
    assert conv(torch.randn(2, 16, 6, 6)).shape == (2, 4, 4, 4)
    with pytest.raises(ValueError, match="reduction"):
        DySign(channels=4, reduction=0)
    with pytest.raises(ValueError, match="bound"):
        DySign(channels=4, bound="sigmoid")
    with pytest.raises(ValueError, match="statistic"):
        ChannelHyperFunction(4, 4, statistic="max")


def test_global_pool_statistics():
    x = torch.randn(2, 3, 4, 4)
    assert torch.allclose(global_pool(x), x.mean(dim=(2, 3)))
    both = global_pool(x, "mean_std")
    assert both.shape == (2, 6) and torch.allclose(both[:, 3:], x.std(dim=(2, 3), unbiased=False))
    assert torch.equal(global_pool(x[:, :, 0, 0]), x[:, :, 0, 0])
