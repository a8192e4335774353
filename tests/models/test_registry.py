"""``onebit.models.create``: argument checking, method resolution, parameter counts."""

import dataclasses

import pytest
import torch
from torch import nn

import onebit
from onebit import models

#: float parameter counts documented in docs/models.md that no paper publishes (regression values)
DOCUMENTED = {
    ("cnn28", 1, 10): 390_890,
    ("vgg_small", 3, 10): 4_660_106,
    ("binary_alexnet", 3, 1000): 61_848_720,
    ("reactnet_a", 3, 1000): 29_300_936,
    ("quicknet", 3, 1000): 12_652_504,
}
PUBLISHED = [n for n in models.list() if models.model_info(n).published_params is not None]


def torch_count(model):
    return sum(p.numel() for p in model.parameters())


def keras_count(model):
    """larq zoo's convention: BatchNorm moving mean and variance counted, no BatchNorm scale."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    return (torch_count(model) - sum(m.weight.numel() for m in norms if m.affine)
            + sum(m.running_mean.numel() + m.running_var.numel() for m in norms))


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_float_parameter_counts(name):
    info = models.model_info(name)
    with torch.device("meta"):  # counts need shapes only
        model = models.create(name, num_classes=info.published_classes, in_chans=3)
    count = torch_count(model) if info.published_count == "torch" else keras_count(model)
    assert count == info.published_params


def test_published_counts_are_the_known_ones():
    assert {n: models.model_info(n).published_params for n in PUBLISHED} == {
        "resnet18": 11_173_962, "resnet20": 269_722, "bireal18": 11_689_512, "reactnet_resnet18": 11_689_512,
        "binary_alexnet": 61_859_192}


@pytest.mark.parametrize("key", sorted(DOCUMENTED), ids=lambda k: k[0])
def test_documented_float_parameter_counts(key):
    name, in_chans, classes = key
    with torch.device("meta"):
        assert torch_count(models.create(name, num_classes=classes, in_chans=in_chans)) == DOCUMENTED[key]


def test_resnet20_with_projection_shortcuts_has_more_parameters():
    with torch.device("meta"):
        assert torch_count(models.create("resnet20", downsample="conv")) == 272_474


def test_bad_arguments_raise_value_errors_listing_what_is_valid():
    with pytest.raises(ValueError, match="valid names: .*resnet18"):
        models.create("resnet1800")
    for bad in (0, -3, 2.5, True, "10"):
        with pytest.raises(ValueError, match="num_classes"):
            models.create("cnn28", num_classes=bad)
        with pytest.raises(ValueError, match="in_chans"):
            models.create("cnn28", in_chans=bad)
    with pytest.raises(ValueError, match="valid names: .*si-bnn"):
        models.create("cnn28", method="not-a-method")
    with pytest.raises(ValueError, match="method must be"):
        models.create("cnn28", method=3)
    with pytest.raises(ValueError, match="width_mult"):
        models.create("resnet20", width_mult=0)


def test_a_method_that_does_not_apply_is_refused(monkeypatch):
    info = dataclasses.replace(models.model_info("cnn28"), name="cnn28_pm1", methods=("bnn", "reactnet"))
    monkeypatch.setitem(models.MODELS._entries, "cnn28_pm1", info)
    models.create("cnn28_pm1", method="bnn", in_chans=1)
    with pytest.raises(ValueError, match=r"\['si-bnn'\] do not apply .* applicable: \['bnn', 'reactnet'\]"):
        models.create("cnn28_pm1", method="si-bnn")
    with pytest.raises(ValueError, match=r"\['dybnn'\] do not apply"):
        models.create("cnn28_pm1", method=["reactnet", "dybnn"])
    with pytest.raises(ValueError, match=r"\['bnn\+', 'sbnn'\] do not apply"):
        models.create("cnn28_pm1", method=["bnn+", "sbnn"])


@pytest.mark.parametrize("name", ["cnn28", "resnet20"])
def test_method_forms(name):
    x = torch.randn(2, 3, 28, 28)
    combined = models.create(name, method=["reactnet", "dybnn"], width_mult=0.25) if name == "resnet20" \
        else models.create(name, method=["reactnet", "dybnn"])
    assert onebit.get_config(combined).method == "reactnet + dybnn"
    method = onebit.methods.get("si-bnn")
    assert onebit.get_config(models.create(name, method=method)) is method
    plain = onebit.BinarizeConfig(input_quantizer="ste_sign", weight_quantizer="ste_sign")
    model = models.create(name, method=plain)
    assert onebit.get_config(model) is plain
    assert any(isinstance(m, onebit.nn.BinaryConv2d) for m in model.modules())
    assert model(x).shape == (2, 10)


def test_block_models_use_the_method_blocks():
    bireal = models.create("resnet20", method="bireal")
    bnn = models.create("resnet20", method="bnn")
    blocks = [m for m in bireal.modules() if isinstance(m, onebit.nn.BinaryBasicBlock)]
    assert len(blocks) == 9
    assert all(b.residual is None and b.unit1.shortcut is not None for b in blocks)  # Bi-Real: per conv
    plain = [m for m in bnn.modules() if isinstance(m, onebit.nn.BinaryBasicBlock)]
    assert all(b.residual is not None and b.unit1.shortcut is None for b in plain)  # BNN: the ResNet's residual
    react = models.create("reactnet_a", method="reactnet", width_mult=0.125)
    assert sum(isinstance(m, onebit.nn.ReActNetBlock) for m in react.modules()) == 13
    assert sum(isinstance(m, onebit.nn.RPReLU) for m in react.modules()) > 0


def test_si_bnn_resnet_has_a_head_relu_and_pre_norm():
    model = models.create("resnet20", method="si-bnn")
    assert isinstance(model.head_act, nn.ReLU)
    assert isinstance(models.create("resnet20", method="bireal").head_act, nn.Identity)


def test_keep_first_false_binarizes_the_stem():
    method = onebit.methods.get("bireal", keep_first=False)
    with pytest.warns(UserWarning, match="first layer"):
        model = models.create("resnet20", method=method)
    assert isinstance(model.stem[0], onebit.nn.BinaryConv2d)
    assert type(model.fc) is nn.Linear


def test_binary_stems_have_no_relu_before_the_sign():
    for name in ("resnet18", "bireal18", "reactnet_a"):
        model = models.create(name, method="bnn", width_mult=0.125)
        assert not any(isinstance(m, nn.ReLU) for m in model.stem)
    for name in ("cnn28", "vgg_small", "binary_alexnet"):
        kwargs = {} if name == "cnn28" else {"width_mult": 0.125}
        assert not any(isinstance(m, nn.ReLU) for m in models.create(name, method="bnn", **kwargs).modules())
