"""The per-channel mechanism: get(spec, channels=...), layers passing in/out channels, lazy channels,
from_float with quantizer parameters, and configs naming per-channel quantizers."""

import pytest
import torch
from torch import nn

import onebit
from onebit import quantizers
from onebit.nn import BinaryConv2d, BinaryLinear

PER_CHANNEL = ["rsign", "si_heaviside", "dysign", "scaled_sign"]


def test_registry_flags_per_channel_quantizers():
    flagged = sorted(name for name in quantizers.list() if quantizers.QUANTIZERS[name].needs_channels)
    assert flagged == sorted(PER_CHANNEL)


@pytest.mark.parametrize("name", PER_CHANNEL)
def test_get_with_channels_and_lazily(name):
    q = quantizers.get(name, channels=7)
    assert q.channels == 7 and sum(p.numel() for p in q.parameters()) > 0
    lazy = quantizers.get(name)
    assert lazy.channels is None and not list(lazy.parameters())
    x = torch.randn(7, 7, 3, 3)
    lazy(x)
    assert lazy.channels == 7 and list(lazy.parameters())
    assert quantizers.get("ste_sign", channels=7).hparams() == {"clip_value": 1.0}  # ignored elsewhere


def test_layers_pass_input_channels_to_input_quantizers_and_output_channels_to_weight_quantizers():
    conv = BinaryConv2d(3, 8, 3, groups=1, input_quantizer="si_heaviside", weight_quantizer="scaled_sign")
    assert conv.input_quantizer.channels == 3 and conv.weight_quantizer.channels == 8
    lin = BinaryLinear(5, 2, input_quantizer="rsign", weight_quantizer="scaled_sign")
    assert lin.input_quantizer.channels == 5 and lin.weight_quantizer.channels == 2
    grouped = BinaryConv2d(4, 8, 3, groups=2, input_quantizer="rsign")
    assert grouped(torch.randn(1, 4, 5, 5)).shape == (1, 8, 3, 3)


def test_from_float_keeps_quantizer_parameters_and_rejects_foreign_keys():
    conv = nn.Conv2d(3, 4, 3)
    b = BinaryConv2d.from_float(conv, input_quantizer="rsign", weight_quantizer="domain_weight")
    assert torch.equal(b.weight, conv.weight) and torch.equal(b.bias, conv.bias)
    assert torch.equal(b.input_quantizer.threshold, torch.zeros(3))
    with pytest.raises(RuntimeError, match="unexpected"):
        b.load_float_state_dict({**conv.state_dict(), "junk": torch.zeros(1)})
    with pytest.raises(RuntimeError, match="missing"):
        b.load_float_state_dict({"weight": conv.weight})


def test_binarize_config_with_per_channel_quantizers_round_trips_and_applies():
    config = onebit.BinarizeConfig(input_quantizer={"name": "rsign"}, weight_quantizer="scaled_sign",
                                   overrides={"2": {"input_quantizer": {"name": "dysign", "reduction": 2}}})
    assert onebit.BinarizeConfig.from_json(config.to_json()) == config
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 6, 3), nn.Conv2d(6, 8, 3), nn.Conv2d(8, 2, 1))
    onebit.binarize_(model, config)
    assert model[1].input_quantizer.threshold.shape == (4,)
    assert model[2].input_quantizer.hyper.fc1.in_features == 6
    assert model(torch.randn(2, 1, 9, 9)).shape == (2, 2, 3, 3)
    state = model.state_dict()
    assert "1.input_quantizer.threshold" in state and "2.weight_quantizer.scale" in state
