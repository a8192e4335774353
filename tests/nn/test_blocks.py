"""Binary blocks configured by a BlockSpec: units, basic blocks, ReActNet blocks, bottlenecks."""

import pytest
import torch
from torch import nn

from onebit.nn import (
    BinaryBasicBlock, BinaryBottleneckBlock, BinaryConv2d, BinaryConvUnit, BlockSpec, DyPReLU, ElasticLink,
    ReActNetBlock, RPReLU, make_activation, make_shortcut,
)

REACT = BlockSpec(input_quantizer="rsign", weight_quantizer={"name": "xnor_weight", "detach_scale": True},
                  activation="rprelu")


def test_unit_is_bn_of_binary_conv_plus_shortcut_then_activation():
    unit = BinaryConvUnit(4, 4, 3, spec=REACT).eval()
    x = torch.randn(2, 4, 5, 5)
    conv, bn = unit.body[0], unit.body[1]
    assert isinstance(conv, BinaryConv2d) and unit.conv is conv
    assert torch.allclose(unit(x), unit.act(bn(conv(x)) + x), atol=1e-6)
    assert isinstance(unit.act, RPReLU)
    # the binary conv is registered once
    assert sum(1 for k in unit.state_dict() if k.endswith("conv.weight") or k == "body.0.weight") == 1


def test_pre_norm_no_post_norm_and_no_shortcut():
    spec = BlockSpec(shortcut="none", pre_norm=True, post_norm=False, activation="relu")
    unit = BinaryConvUnit(3, 5, 3, spec=spec)
    assert isinstance(unit.body[0], nn.BatchNorm2d) and isinstance(unit.body[1], BinaryConv2d)
    assert len(unit.body) == 2 and unit.shortcut is None


@pytest.mark.parametrize("downsample", ["avgpool_conv", "conv_avgpool", "option_a"])
def test_downsample_shortcuts(downsample):
    sc = make_shortcut(4, 8, 2, downsample)
    x = torch.randn(2, 4, 6, 6)
    assert sc(x).shape == (2, 8, 3, 3)
    if downsample == "option_a":
        assert torch.equal(sc(x)[:, :4], x[:, :, ::2, ::2]) and not sc(x)[:, 4:].any()
    assert isinstance(make_shortcut(4, 4, 1), nn.Identity)
    assert isinstance(make_shortcut(4, 4, 2), nn.AvgPool2d)


@pytest.mark.parametrize("shortcut", ["none", "per_conv", "block"])
def test_basic_block_shapes_and_backward(shortcut):
    spec = BlockSpec(input_quantizer="approx_sign", weight_quantizer="xnor_weight", shortcut=shortcut,
                     activation="hardtanh")
    block = BinaryBasicBlock(4, 8, 2, spec=spec)
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    y = block(x)
    assert y.shape == (2, 8, 4, 4)
    y.sum().backward()
    assert x.grad is not None
    assert (block.residual is not None) == (shortcut == "block")
    assert (block.unit1.shortcut is not None) == (shortcut == "per_conv")


def test_reactnet_block_keeps_or_doubles_width():
    same = ReActNetBlock(8, 8, 1, spec=REACT)
    assert same(torch.randn(2, 8, 6, 6)).shape == (2, 8, 6, 6) and len(same.conv1x1) == 1
    double = ReActNetBlock(8, 16, 2, spec=REACT)
    assert double(torch.randn(2, 8, 6, 6)).shape == (2, 16, 3, 3) and len(double.conv1x1) == 2
    assert isinstance(double.conv3x3.shortcut, nn.AvgPool2d)
    with pytest.raises(ValueError, match="doubles"):
        ReActNetBlock(8, 12, spec=REACT)


def test_dynamic_threshold_and_elastic_link_in_blocks():
    spec = BlockSpec(input_quantizer={"name": "dysign", "reduction": 4}, activation="dyprelu",
                     activation_options={"reduction": 4}, elastic_link={"gate_init": 0.5})
    block = ReActNetBlock(8, 16, 2, spec=spec)
    assert isinstance(block.conv3x3.body, ElasticLink) and block.conv3x3.shortcut is None
    assert isinstance(block.conv3x3.act, DyPReLU)
    assert block(torch.randn(2, 8, 6, 6)).shape == (2, 16, 3, 3)


def test_bottleneck_links_squeeze_and_expand_around_1x1_convs():
    spec = BlockSpec(input_quantizer="approx_sign", weight_quantizer="xnor_weight", elastic_link={})
    block = BinaryBottleneckBlock(16, 32, 2, spec=spec)
    assert block.reduce.body.channel_path == "squeeze" and block.expand.body.channel_path == "expand"
    assert block(torch.randn(2, 16, 8, 8)).shape == (2, 32, 4, 4)
    plain = BinaryBottleneckBlock(16, 32, 1, spec=BlockSpec(shortcut="per_conv"))
    assert plain.reduce.shortcut is None and plain.conv.shortcut is not None and plain.expand.shortcut is None


def test_invalid_specs_and_activations():
    for kwargs in ({"shortcut": "dense"}, {"downsample": "maxpool"}, {"activation": "gelu"}):
        with pytest.raises(ValueError, match="must be one of"):
            BlockSpec(**kwargs)
    with pytest.raises(ValueError, match="options"):
        make_activation("relu", 4, inplace=True)
    with pytest.raises(ValueError, match="bad options"):
        make_activation("rprelu", 4, reduction=3)
    with pytest.raises(TypeError, match="BlockSpec"):
        BinaryConvUnit(2, 2, spec="reactnet")
    assert isinstance(make_activation("prelu", 4, slope_init=0.1), nn.PReLU)
