"""The zoo inside ``onebit.train``: recipes build zoo models with the method's blocks, checkpoints rebuild them."""

import pytest
import torch
from torch import nn

import onebit
from onebit.checkpoint import save_checkpoint
from onebit.train import binarized_model, build_model, load_trained_model
from onebit.train.recipe import ModelConfig, load_recipe
from onebit.train.run import load_stage1_weights


def test_fashion_mnist_recipe_builds_cnn28():
    recipe = load_recipe("fashion_mnist_bnn")
    assert recipe.model.name == "cnn28"
    model = binarized_model(recipe.model)
    assert onebit.get_config(model).method == "bnn"
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert isinstance(model.stage1[0], onebit.nn.BinaryConv2d) and type(model.stem[0]) is nn.Conv2d


def test_cifar10_recipe_builds_a_binary_resnet18_from_blocks():
    recipe = load_recipe("cifar10_resnet18")
    assert recipe.model.name == "resnet18"
    model = binarized_model(recipe.model)
    blocks = [m for m in model.modules() if isinstance(m, onebit.nn.BinaryBasicBlock)]
    assert len(blocks) == 8 and all(b.residual is not None for b in blocks)  # BNN keeps the ResNet residual
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_builtin_small_cnn_still_builds():
    model = binarized_model(ModelConfig(name="small_cnn", in_chans=1, method="bnn", kwargs={"width": 8}))
    assert onebit.get_config(model).method == "bnn"
    assert type(build_model(ModelConfig(name="small_cnn", in_chans=1))) is nn.Sequential


def test_unknown_model_lists_zoo_and_builtin_names():
    with pytest.raises(ValueError, match="resnet18.*small_cnn"):
        build_model(ModelConfig(name="resnet1800"))


@pytest.mark.parametrize("name, method", [("cnn28", "bnn"), ("resnet20", "reactnet"), ("resnet20", ["reactnet", "dybnn"])])
def test_checkpoint_rebuilds_the_same_model(tmp_path, name, method):
    recipe = load_recipe("fashion_mnist_bnn").override([f"model.name={name}"])
    recipe = recipe.override(["model.method=" + (method if isinstance(method, str) else f"[{', '.join(method)}]")])
    model = binarized_model(recipe.model)
    model.eval()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, extra={"recipe": recipe.to_yaml()})
    again, _, _ = load_trained_model(path)
    again.eval()
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(model(x), again(x))
    assert type(again) is type(model)


def test_two_stage_models_share_structure():
    cfg = ModelConfig(name="resnet20", method="reactnet", kwargs={"width_mult": 0.5})
    stage1, stage2 = binarized_model(cfg, stage1=True), binarized_model(cfg)
    assert onebit.get_config(stage1).weight_quantizer is None
    load_stage1_weights(stage2, stage1)
