"""Elastic-Link: Y = body(X) + gamma * P_s(T(X)) with identity / squeeze / expand / conv channel paths."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from onebit.nn import BinaryConv2d, ElasticLink


@pytest.mark.parametrize("cin, cout, path", [(8, 8, "identity"), (8, 2, "squeeze"), (2, 8, "expand"), (6, 4, "conv")])
def test_channel_paths(cin, cout, path):
    conv = BinaryConv2d(cin, cout, 1, input_quantizer="approx_sign", weight_quantizer="ste_sign")
    link = ElasticLink.around(conv)
    assert link.channel_path == path and path in repr(link)
    x = torch.randn(2, cin, 5, 5)
    y = link(x)
    assert y.shape == (2, cout, 5, 5)
    extra = y - conv(x)
    if path == "identity":
        assert torch.allclose(extra, x, atol=1e-5)
    elif path == "squeeze":
        assert torch.allclose(extra, x.view(2, cout, cin // cout, 5, 5).mean(dim=2), atol=1e-5)
    elif path == "expand":
        assert torch.allclose(extra, x.repeat(1, cout // cin, 1, 1), atol=1e-5)


def test_squeeze_sum_expand_interleave_and_scalar_gate():
    x = torch.arange(2 * 4 * 1 * 1, dtype=torch.float32).view(2, 4, 1, 1)
    body = nn.Conv2d(4, 2, 1, bias=False)
    nn.init.zeros_(body.weight)
    link = ElasticLink(body, 4, 2, squeeze="sum", gate="scalar", gate_init=0.5)
    assert torch.allclose(link(x), 0.5 * x.view(2, 2, 2, 1, 1).sum(dim=2))
    body = nn.Conv2d(2, 4, 1, bias=False)
    nn.init.zeros_(body.weight)
    x2 = torch.tensor([1.0, 2.0]).view(1, 2, 1, 1)
    assert ElasticLink(body, 2, 4, expand="interleave")(x2).flatten().tolist() == [1, 1, 2, 2]
    assert ElasticLink(body, 2, 4, expand="tile")(x2).flatten().tolist() == [1, 2, 1, 2]


def test_stride_pools_and_gate_scales_per_channel():
    conv = BinaryConv2d(4, 8, 3, stride=2, padding=1, bias=False)
    link = ElasticLink.around(conv, nn.BatchNorm2d(8), gate_init=0.1)
    with torch.no_grad():
        link.gate.copy_(torch.linspace(0.1, 0.8, 8))
    for size in (8, 7):  # even and odd sizes
        x = torch.randn(2, 4, size, size)
        y = link(x)
        assert y.shape[-2:] == conv(x).shape[-2:]
        pooled = F.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False).repeat(1, 2, 1, 1)
        assert torch.allclose(y - link.body(x), link.gate.view(1, 8, 1, 1) * pooled, atol=1e-6)


def test_gradients_reach_gate_and_input():
    conv = BinaryConv2d(4, 4, 3, padding=1)
    link = ElasticLink.around(conv)
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    link(x).sum().backward()
    assert link.gate.grad is not None and link.gate.grad.shape == (4,)
    assert x.grad is not None


def test_invalid_options():
    conv = nn.Conv2d(2, 2, 1)
    for kwargs in ({"gate": "pixel"}, {"squeeze": "max"}, {"expand": "zeros"}):
        with pytest.raises(ValueError, match="must be one of"):
            ElasticLink.around(conv, **kwargs)
    with pytest.raises(ValueError, match="expects"):
        ElasticLink.around(conv)(torch.randn(1, 3, 4, 4))
