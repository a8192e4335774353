"""Every registered model: forward, backward, summary and every applicable method, on tiny inputs.

The fast tier runs narrow variants (``width_mult``) at each model's ``small_size`` with a batch of 2; the
slow tier runs the full-width models with every method, and each model at its design input size.
"""

import pytest
import torch
from torch import nn

import onebit
from onebit import models

NAMES = models.list()
PAIRS = [(name, method) for name in NAMES for method in models.model_info(name).methods]
#: narrow variants for the fast tier (cnn28 is small already)
NARROW = {"cnn28": {"width": 8}, "binary_alexnet": {"width_mult": 0.0625}}


def narrow(name):
    return NARROW.get(name, {"width_mult": 0.125})


def tiny_input(name, in_chans=None, batch=2, size=None):
    info = models.model_info(name)
    size = size or info.small_size
    return torch.randn(batch, in_chans or info.input_size[0], size, size)


def forward_backward(model, x):
    model.train()
    out = model(x)
    out.square().mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"no gradient reaches {no_grad[:5]} ({len(no_grad)} in all)"
    assert torch.isfinite(out).all()
    return out


def test_list_is_sorted_and_filters():
    assert NAMES == sorted(NAMES)
    assert {"cnn28", "vgg_small", "resnet18", "resnet20", "binary_alexnet", "bireal18", "reactnet_resnet18",
            "reactnet_a", "quicknet"} <= set(NAMES)
    assert models.list_models("*resnet*") == ["reactnet_resnet18", "resnet18", "resnet20"]
    assert onebit.models.list is models.list_models


@pytest.mark.parametrize("name", NAMES)
def test_float_model_any_classes_and_channels(name):
    model = models.create(name, num_classes=7, in_chans=2, **narrow(name))
    assert onebit.get_config(model) is None
    assert not any(isinstance(m, onebit.nn.QuantizedLayerMixin) for m in model.modules())
    out = forward_backward(model, tiny_input(name, in_chans=2))
    assert out.shape == (2, 7)


@pytest.mark.parametrize("name, method", PAIRS, ids=[f"{n}-{m}" for n, m in PAIRS])
def test_every_applicable_method_builds_and_trains(name, method):
    in_chans = models.model_info(name).input_size[0]
    model = models.create(name, num_classes=5, in_chans=in_chans, method=method, **narrow(name))
    assert onebit.get_config(model).method == method
    out = forward_backward(model, tiny_input(name))
    assert out.shape == (2, 5)


@pytest.mark.parametrize("name", NAMES)
def test_summary_counts_binary_macs_once_binarized(name):
    c, size = models.model_info(name).input_size[0], models.model_info(name).small_size
    float_model = models.create(name, in_chans=c, **narrow(name))
    assert onebit.summary(float_model, (1, c, size, size), print_table=False).binary_macs == 0
    binary = models.create(name, in_chans=c, method="bnn", **narrow(name))
    result = onebit.summary(binary, (1, c, size, size), print_table=False)
    assert result.binary_macs > 0 and result.binary_params > 0
    assert result.binary_mac_share > 0.5


@pytest.mark.parametrize("name", NAMES)
def test_stem_and_classifier_stay_float(name):
    model = models.create(name, method="reactnet", **narrow(name))
    layers = [m for m in model.modules() if type(m) in (nn.Conv2d, nn.Linear, onebit.nn.BinaryConv2d,
                                                         onebit.nn.BinaryLinear)]
    first_conv = next(m for m in layers if isinstance(m, nn.Conv2d))
    last_linear = [m for m in layers if isinstance(m, nn.Linear)][-1]
    assert type(first_conv) is nn.Conv2d and type(last_linear) is nn.Linear


@pytest.mark.slow
@pytest.mark.parametrize("name, method", PAIRS, ids=[f"{n}-{m}" for n, m in PAIRS])
def test_every_method_at_full_width(name, method):
    model = models.create(name, num_classes=10, in_chans=models.model_info(name).input_size[0], method=method)
    assert forward_backward(model, tiny_input(name)).shape == (2, 10)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("method", [None, "reactnet"])
def test_design_input_size(name, method):
    info = models.model_info(name)
    model = models.create(name, num_classes=10, in_chans=info.input_size[0], method=method)
    assert forward_backward(model, tiny_input(name, size=info.input_size[1])).shape == (2, 10)
