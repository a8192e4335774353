"""RPReLU and LearnableBias (ReActNet)."""

import pytest
import torch
import torch.nn.functional as F

from onebit.nn import LearnableBias, RPReLU


def test_rprelu_formula_and_init():
    act = RPReLU(3)
    assert torch.equal(act.slope, torch.full((3,), 0.25))
    x = torch.randn(2, 3, 4, 4)
    assert torch.allclose(act(x), F.prelu(x, torch.full((3,), 0.25)))  # zero shifts at init
    with torch.no_grad():
        act.shift_in.copy_(torch.tensor([0.5, -1.0, 0.0]))
        act.shift_out.copy_(torch.tensor([1.0, 2.0, -3.0]))
        act.slope.copy_(torch.tensor([0.1, 0.2, 0.3]))
    gamma, zeta, beta = (t.view(1, 3, 1, 1) for t in ([0.5, -1.0, 0.0], [1.0, 2.0, -3.0], [0.1, 0.2, 0.3])
                         for t in [torch.tensor(t)])
    u = x - gamma
    assert torch.allclose(act(x), torch.where(u >= 0, u, beta * u) + zeta, atol=1e-6)
    assert act(torch.randn(5, 3)).shape == (5, 3)  # (N, C) inputs


def test_learnable_bias_and_gradients():
    lb = LearnableBias(4, init=0.5)
    x = torch.randn(2, 4, 3, 3, requires_grad=True)
    y = lb(x)
    assert torch.allclose(y, x + 0.5)
    y.sum().backward()
    assert torch.equal(lb.bias.grad, torch.full((4,), 18.0))
    with pytest.raises(ValueError, match="positive int"):
        RPReLU(0)
