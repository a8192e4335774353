"""BinaryConv2d / BinaryLinear: equal to the torch layer without quantizers; every argument reaches the op."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from onebit.nn import BinaryConv2d, BinaryLinear


def pm1(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.where(torch.rand(*shape, generator=g) < 0.5, -1.0, 1.0)


CONV_CASES = [
    dict(in_channels=4, out_channels=6, kernel_size=3, stride=1, padding=1, dilation=1, groups=1, bias=True),
    dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, dilation=1, groups=1, bias=False),
    dict(in_channels=6, out_channels=9, kernel_size=3, stride=1, padding=2, dilation=2, groups=3, bias=True),
    dict(in_channels=8, out_channels=8, kernel_size=(1, 3), stride=(2, 1), padding=(0, 1), dilation=1, groups=8, bias=True),
    dict(in_channels=3, out_channels=5, kernel_size=5, stride=1, padding="same", dilation=1, groups=1, bias=True),
    dict(in_channels=3, out_channels=5, kernel_size=2, stride=1, padding="valid", dilation=1, groups=1, bias=False),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_without_quantizers_equals_torch(case):
    torch.manual_seed(0)
    ref = nn.Conv2d(**case)
    layer = BinaryConv2d(**case, input_quantizer=None, weight_quantizer=None)
    layer.load_state_dict(ref.state_dict())
    x = torch.randn(2, case["in_channels"], 9, 10)
    assert torch.equal(layer(x), ref(x))


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("pad_value", [0.0, 1.0, -1.0])
def test_conv_binarized_equals_torch_on_pm1(case, pad_value):
    torch.manual_seed(1)
    layer = BinaryConv2d(**case, pad_value=pad_value)
    x = torch.randn(2, case["in_channels"], 9, 10)
    xb, wb = torch.where(x >= 0, 1.0, -1.0), torch.where(layer.weight >= 0, 1.0, -1.0)
    padding = case["padding"]
    if pad_value != 0.0 and padding not in ("valid", 0):
        xb = F.pad(xb, layer._reversed_padding_repeated_twice, value=pad_value)
        padding = 0
    expected = F.conv2d(xb, wb, layer.bias, case["stride"], padding, case["dilation"], case["groups"])
    assert torch.equal(layer(x), expected)


def test_pad_value_one_is_plus_one_at_the_border():
    layer = BinaryConv2d(1, 1, 3, padding=1, bias=False, pad_value=1.0)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    out = layer(torch.ones(1, 1, 4, 4))  # all +1 input, all +1 padding: every output is 9
    assert torch.equal(out, torch.full((1, 1, 4, 4), 9.0))
    zero = BinaryConv2d(1, 1, 3, padding=1, bias=False)
    zero.load_state_dict(layer.state_dict())
    assert zero(torch.ones(1, 1, 4, 4))[0, 0, 0, 0] == 4.0  # corner: 4 of 9 taps valid


def test_every_argument_reaches_the_op():
    # Changing any one argument must change the output (no silently dropped arguments).
    base = dict(in_channels=4, out_channels=4, kernel_size=3, stride=1, padding=1, dilation=1, groups=1, bias=True)
    variants = dict(stride=2, padding=2, dilation=2, groups=2, bias=False)
    x = torch.randn(1, 4, 8, 8)
    torch.manual_seed(0)
    ref = BinaryConv2d(**base, input_quantizer=None, weight_quantizer=None)
    with torch.no_grad():
        ref.bias.fill_(0.5)
    y0 = ref(x)
    for key, value in variants.items():
        layer = BinaryConv2d(**{**base, key: value}, input_quantizer=None, weight_quantizer=None)
        sd = {k: v for k, v in ref.state_dict().items() if k in layer.state_dict()}
        if key == "groups":
            sd["weight"] = ref.weight[:, :2].clone()
        layer.load_state_dict(sd)
        y = layer(x)
        assert y.shape != y0.shape or not torch.equal(y, y0), key


def test_linear_without_quantizers_equals_torch():
    torch.manual_seed(0)
    for bias in (True, False):
        ref = nn.Linear(130, 7, bias=bias)
        layer = BinaryLinear(130, 7, bias=bias, input_quantizer=None, weight_quantizer=None)
        layer.load_state_dict(ref.state_dict())
        x = torch.randn(5, 130)
        assert torch.equal(layer(x), ref(x))


def test_linear_binarized_equals_torch_on_pm1():
    torch.manual_seed(0)
    layer = BinaryLinear(65, 3)
    x = torch.randn(4, 65)
    expected = F.linear(torch.where(x >= 0, 1.0, -1.0), torch.where(layer.weight >= 0, 1.0, -1.0), layer.bias)
    assert torch.equal(layer(x), expected)


def test_from_float_keeps_arguments_and_parameters():
    conv = nn.Conv2d(6, 4, 3, stride=2, padding=1, dilation=1, groups=2, bias=True, padding_mode="zeros")
    b = BinaryConv2d.from_float(conv, input_quantizer=None, weight_quantizer=None)
    for attr in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups"):
        assert getattr(b, attr) == getattr(conv, attr)
    x = torch.randn(1, 6, 7, 7)
    assert torch.equal(b(x), conv(x))
    lin = nn.Linear(10, 3)
    bl = BinaryLinear.from_float(lin, input_quantizer=None, weight_quantizer=None)
    x = torch.randn(2, 10)
    assert torch.equal(bl(x), lin(x))


def test_gradients_flow_to_latent_weights_and_input():
    layer = BinaryConv2d(3, 4, 3, padding=1)
    x = (0.5 * torch.randn(2, 3, 5, 5)).requires_grad_(True)
    layer(x).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_precision_and_mode():
    layer = BinaryConv2d(3, 4, 3)
    assert (layer.input_precision, layer.weight_precision, layer.mode) == (1, 1, "fake")
    assert BinaryLinear(3, 4, input_quantizer=None).input_precision == 32


def test_pad_value_with_other_padding_mode_is_an_error():
    with pytest.raises(ValueError, match="padding_mode"):
        BinaryConv2d(3, 4, 3, padding=1, padding_mode="reflect", pad_value=1.0)


def test_unknown_quantizer_name_is_an_error():
    with pytest.raises(ValueError, match="valid names"):
        BinaryLinear(3, 4, input_quantizer="sgn")


@pytest.mark.parametrize("iq,wq", list(itertools.product([None, "ste_sign", "approx_sign"], [None, "ste_sign", "xnor_weight"])))
def test_quantizer_combinations_run(iq, wq):
    layer = BinaryConv2d(4, 4, 3, padding=1, input_quantizer=iq, weight_quantizer=wq)
    assert layer(torch.randn(1, 4, 6, 6)).shape == (1, 4, 6, 6)
