"""Every method (and the combinations the papers use) trains a small model on a Fashion-MNIST slice.

Fast tier: 120 Adam steps (batch 64) on 2000 images average-pooled to 14x14, through ``binarize_`` for
each method and through the method's blocks for each combination; the mean task loss of the last 30
steps must be below 0.7 x that of the first 30. The slow tier trains longer and checks test accuracy.
"""

import pytest
import torch

import onebit
from onebit.sparsity import sparsity_report

from methods_testlib import block_net, build, fashion_slice, plain_cnn, train

METHODS = ["bnn", "xnor", "bireal", "reactnet", "si-bnn", "sbnn", "dybnn", "bnn+", "elastic-link"]
COMBOS = [(("reactnet", "dybnn"), "reactnet"), (("reactnet", "elastic-link"), "reactnet"), (("bnn+", "sbnn"), "basic")]


@pytest.fixture(scope="module")
def data():
    return fashion_slice(2000, size=14)


def falls(losses, window):
    first, last = sum(losses[:window]) / window, sum(losses[-window:]) / window
    return last < 0.7 * first, (first, last)


@pytest.mark.parametrize("name", METHODS)
def test_binarize_with_method_then_train(name, data, one_thread):
    torch.manual_seed(0)
    method = build(name)
    model = onebit.binarize_(plain_cnn(8), method)
    assert onebit.get_config(model) is method
    losses = train(model, method, *data, steps=120)
    ok, (first, last) = falls(losses, 30)
    assert ok, f"{name}: loss {first:.3f} -> {last:.3f}"


@pytest.mark.parametrize("combo, block", COMBOS, ids=["+".join(c) for c, _ in COMBOS])
def test_combined_methods_train_in_blocks(combo, block, data, one_thread):
    torch.manual_seed(0)
    method = build(combo)
    model = block_net(method, block)
    losses = train(model, method, *data, steps=120)
    ok, (first, last) = falls(losses, 30)
    assert ok, f"{combo}: loss {first:.3f} -> {last:.3f}"


@pytest.mark.slow
@pytest.mark.parametrize("name", METHODS + [c for c, _ in COMBOS], ids=lambda v: v if isinstance(v, str) else "+".join(v))
@pytest.mark.parametrize("block", ["basic", "reactnet"])
def test_methods_train_to_useful_accuracy(name, block):
    """Fuller version: 28x28 inputs, 600 steps, BatchNorm statistics re-estimated, held-out accuracy well above
    chance (10 %); SBNN also sparsifies."""
    torch.manual_seed(0)
    x, y = fashion_slice(6000, size=28)
    xt, yt = fashion_slice(1000, size=28, split="test")
    method = build(name)
    model = block_net(method, block, width=16)
    losses = train(model, method, x, y, steps=600, lr=3e-3)
    ok, (first, last) = falls(losses, 50)
    assert ok, f"{name}: loss {first:.3f} -> {last:.3f}"
    # At a constant learning rate latent weights keep crossing zero to the last step, so BatchNorm's
    # running statistics (momentum 0.1) lag the binary weights they describe: eval accuracy 0.28-0.52
    # where batch statistics give 0.74. Re-estimate them over the training images first, as after SWA.
    torch.optim.swa_utils.update_bn([x[i:i + 500] for i in range(0, len(x), 500)], model)
    model.eval()
    with torch.no_grad():
        accuracy = (model(xt).argmax(1) == yt).float().mean().item()
    assert accuracy > 0.6, f"{name} in {block} blocks: test accuracy {accuracy:.3f}"
    if "sbnn" in name:
        assert sparsity_report(model).sparsity > 0.5
