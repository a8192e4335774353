"""DyPReLU (DyBNN): PReLU with per-sample shifts from a hyper function."""

import torch
import torch.nn.functional as F

from onebit.nn import DyPReLU, RPReLU


def test_dyprelu_starts_as_rprelu():
    dy, rp = DyPReLU(8, reduction=4), RPReLU(8)
    x = torch.randn(3, 8, 5, 5)
    assert torch.allclose(dy(x), rp(x))
    assert dy.hyper.fc2.out_features == 16 and dy.hyper.fc1.out_features == 2


def test_dyprelu_shifts_depend_on_the_input_and_follow_the_formula():
    dy = DyPReLU(4, reduction=2)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in dy.hyper.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    x = torch.randn(2, 4, 3, 3, generator=gen)
    x[1] += 2.0
    gamma, zeta = dy.shifts(x)
    assert not torch.allclose(gamma[0], gamma[1]) and not torch.allclose(zeta[0], zeta[1])
    h = dy.hyper.fc2(torch.relu(dy.hyper.fc1(x.mean(dim=(2, 3)))))
    assert torch.allclose(torch.cat([gamma, zeta], dim=1), h)
    expected = F.prelu(x - gamma[:, :, None, None], dy.slope) + zeta[:, :, None, None]
    assert torch.allclose(dy(x), expected, atol=1e-6)
    dy(x).sum().backward()
    assert all(p.grad is not None for p in dy.parameters())
