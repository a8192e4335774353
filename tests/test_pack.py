"""onebit.pack_: packed binary layers through the torch.library custom op equal the float layers in eval."""

import pytest
import torch
from torch import nn

import onebit
from onebit.nn import BinaryConv2d, BinaryLinear
from onebit.pack import PackedBinaryConv2d, pack_


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@torch.no_grad()
def close(a, b):
    scale = b.abs().amax().clamp_min(1e-6)
    return float((a - b).abs().max() / scale) < 1e-5


@torch.no_grad()
def trained_like(model: nn.Module) -> nn.Module:
    """Random BatchNorm statistics and affine, as after training. With BN at its initial identity a
    binary conv's integer output of exactly 0 would sit on the next sign's threshold, where torch's
    float sum of +-alpha terms (not exactly 0) and the exact popcount legitimately disagree."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.3, 0.3)
    return model.eval()


@pytest.mark.parametrize("cin, cout, k, stride, pad, dil, groups, pad_value", [
    (3, 8, 3, 1, 1, 1, 1, 0.0), (65, 70, 3, 2, 1, 1, 1, 1.0), (64, 64, 3, 1, 2, 2, 2, 0.0),
    (129, 20, 1, 1, 0, 1, 1, 1.0), (130, 130, 3, 1, 1, 1, 2, -1.0),
])
@pytest.mark.parametrize("weights", ["ste_sign", "xnor_weight"])
def test_packed_conv_equals_the_binary_conv(cin, cout, k, stride, pad, dil, groups, pad_value, weights):
    torch.manual_seed(cin + cout)
    layer = BinaryConv2d(cin, cout, k, stride, pad, dil, groups, bias=True, input_quantizer="ste_sign",
                         weight_quantizer=weights, pad_value=pad_value).eval()
    x = torch.randn(2, cin, 9, 11)
    ref = layer(x)
    model = pack_(nn.Sequential(layer))
    assert isinstance(model[0], PackedBinaryConv2d)
    assert close(model(x), ref)


def test_packed_linear_and_rsign_threshold():
    torch.manual_seed(0)
    layer = BinaryLinear(100, 33, input_quantizer="rsign", weight_quantizer="xnor_weight").eval()
    with torch.no_grad():
        layer.input_quantizer.threshold.uniform_(-0.5, 0.5)
    x = torch.randn(4, 100)
    ref = layer(x)
    assert close(pack_(nn.Sequential(layer))(x), ref)


@pytest.mark.parametrize("method", ["bnn", "xnor", "reactnet"])
def test_packed_zoo_model_matches_eval(method):
    torch.manual_seed(1)
    model = trained_like(onebit.models.create("cnn28", num_classes=10, in_chans=1, method=method, width=16))
    x = torch.randn(3, 1, 28, 28)
    ref = model(x)
    out = pack_(model)(x)
    assert sum(isinstance(m, PackedBinaryConv2d) for m in model.modules()) == 3
    assert close(out, ref)


def test_custom_op_is_registered_and_has_a_fake_kernel():
    layer = BinaryConv2d(8, 4, 3, padding=1, input_quantizer="ste_sign", weight_quantizer="ste_sign").eval()
    packed = pack_(nn.Sequential(layer))[0]
    x = torch.randn(1, 8, 5, 5)
    torch.library.opcheck(torch.ops.onebit.bconv2d_sign.default,
                          (x, packed.words, packed.alpha, packed.bias, packed.shift, 8, [3, 3], [1, 1], [1, 1],
                           [1, 1], 1, 0), test_utils=("test_schema", "test_faketensor"))


def test_unpackable_layers_are_named():
    layer = BinaryConv2d(8, 4, 3, input_quantizer="ste_heaviside", weight_quantizer="ste_sign")
    with pytest.raises(ValueError, match="layer '0' has input quantizer 'ste_heaviside'"):
        pack_(nn.Sequential(layer))
