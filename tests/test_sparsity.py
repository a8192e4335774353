"""SBNN conversion, magnitude pruning at a target sparsity, and the sparsity / memory report."""

import math

import pytest
import torch
from torch import nn

import onebit
from onebit.nn import BinaryConv2d
from onebit.quantizers import DomainWeight
from onebit.sparsity import MaskedWeight, magnitude_prune_, sparsity_report, to_domain_


def model(weight_quantizer="ste_sign"):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3), BinaryConv2d(8, 16, 3, weight_quantizer=weight_quantizer),
                         BinaryConv2d(16, 16, 1, weight_quantizer=weight_quantizer), nn.Conv2d(16, 2, 1))


def test_to_domain_keeps_bits_and_fits_values():
    m = model("xnor_weight")
    w = m[1].weight.detach().clone()
    fits = to_domain_(m)
    assert isinstance(m[1].weight_quantizer, DomainWeight) and set(fits) == {"1", "2"}
    q = m[1].quantized_weight().detach()
    assert torch.allclose(q, torch.where(w >= 0, w[w >= 0].mean(), w[w < 0].mean()), atol=1e-6)


def test_to_domain_at_a_density_reassigns_bits_by_the_closed_form():
    m = model()
    w = m[1].weight.detach().clone()
    to_domain_(m, density=0.1)
    k = int(math.floor(0.1 * w.numel() + 0.5))
    latent = m[1].weight.detach()
    assert int((latent >= 0).sum()) == k
    assert torch.equal(latent >= 0, w >= torch.topk(w.flatten(), k).values.min())  # top-k weights
    alpha, beta = m[1].weight_quantizer.values()
    top = w >= torch.topk(w.flatten(), k).values.min()
    assert alpha.item() == pytest.approx(w[top].mean().item(), rel=1e-5)
    assert beta.item() == pytest.approx(w[~top].mean().item(), rel=1e-5)
    report = sparsity_report(m)
    assert report.layers[0].sparsity == pytest.approx(1 - k / w.numel())


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_magnitude_pruning_reaches_the_target(scope):
    m = model("xnor_weight")
    realised = magnitude_prune_(m, 0.7, scope=scope)
    assert isinstance(m[1].weight_quantizer, MaskedWeight)
    report = sparsity_report(m)
    assert report.sparsity == pytest.approx(0.7, abs=0.01)
    if scope == "layer":
        assert all(v == pytest.approx(0.7, abs=0.01) for v in realised.values())
    q = m[1].quantized_weight()
    kept = m[1].weight.abs() > m[1].weight.abs()[q == 0].max()
    assert torch.equal(q != 0, kept)  # the largest |w| survive
    magnitude_prune_(m, 0.2)  # re-pruning replaces the mask
    assert sparsity_report(m).sparsity == pytest.approx(0.2, abs=0.01)


def test_pruned_weights_get_no_gradient_through_sign():
    m = model("ste_sign")
    magnitude_prune_(m, 0.5)
    q = m[1].quantized_weight().detach()
    assert set(q.unique().tolist()) == {-1.0, 0.0, 1.0} and sparsity_report(m).layers[0].encoding == "ternary"
    m(torch.randn(2, 1, 8, 8)).sum().backward()
    assert (m[1].weight.grad[q == 0] == 0).all() and (m[1].weight.grad[q != 0] != 0).any()


def test_pruning_sbnn_domain_weights_turns_one_bits_into_beta():
    m = model("domain_weight")
    magnitude_prune_(m, 0.9)
    q = m[1].quantized_weight().detach()
    alpha, beta = (v.item() for v in m[1].weight_quantizer.inner.values())
    assert set(q.unique().tolist()) <= {alpha, beta}
    assert (q == alpha).float().mean().item() == pytest.approx(0.1, abs=0.01)
    assert sparsity_report(m).layers[0].sparsity == pytest.approx(0.9, abs=0.01)
    with pytest.raises(ValueError, match="sparsity"):
        magnitude_prune_(m, 1.5)
    with pytest.raises(ValueError, match="domain_weight"):
        MaskedWeight(onebit.quantizers.SteSign(), torch.ones(2, dtype=torch.bool), fill="beta")


def test_sparsity_report_memory_accounting():
    conv = BinaryConv2d(2, 3, 3, weight_quantizer="domain_weight")
    with torch.no_grad():
        conv.weight.fill_(-1.0)
        conv.weight[0, 0, 0, 0] = 1.0  # one 1-bit in 54 weights: one non-empty 3x3 kernel
        conv.weight[2, 1, 1, 1] = 1.0
    entry = sparsity_report(nn.Sequential(conv)).layers[0]
    assert (entry.numel, entry.nnz, entry.encoding, entry.flipped) == (54, 2, "binary", False)
    assert entry.sparsity == pytest.approx(52 / 54)
    assert entry.dense_bits == 54 and entry.bitmask_bits == 54
    assert entry.index_bits == 2 * math.ceil(math.log2(54))
    assert entry.kernel_bits == 3 * 2 + 2 * 9
    assert entry.scale_bits == 64 and entry.best == "index"
    with torch.no_grad():
        conv.weight.neg_()  # now the -1 side is the minority: the encoding flips
    flipped = sparsity_report(nn.Sequential(conv)).layers[0]
    assert flipped.flipped and flipped.nnz == 2


def test_sparsity_report_of_a_dense_bnn_and_table():
    m = model("xnor_weight")
    report = sparsity_report(m)
    assert [entry.name for entry in report.layers] == ["1", "2"]
    assert 0.5 <= report.sparsity < 0.55  # the minority value is encoded as 1: a balanced layer is ~50 %
    assert report.memory_bytes("dense") == sum(e.sizes["dense"] for e in report.layers) / 8
    assert report.memory_bytes("best") <= report.memory_bytes("dense")
    assert "Sparsity" in report.table() and "1" in str(report)
    with pytest.raises(ValueError, match="encoding"):
        report.memory_bytes("zip")


@pytest.mark.parametrize("fill", ["zero", "beta"])
def test_block_pruning_removes_whole_engine_blocks(fill):
    """granularity="block": every (8 output channels x 64 input channels x 1 tap) block is kept or pruned
    whole (edge blocks smaller), at the target fraction of weights."""
    torch.manual_seed(3)
    m = nn.Sequential(BinaryConv2d(130, 20, 3, weight_quantizer="domain_weight" if fill == "beta" else "ste_sign"),
                      BinaryConv2d(20, 12, 1))
    magnitude_prune_(m, 0.75, granularity="block", fill=None if fill == "beta" else "zero")
    mask = m[0].weight_quantizer.mask                                     # (20, 130, 3, 3)
    for o0 in range(0, 20, 8):
        for i0 in range(0, 130, 64):
            block = mask[o0:o0 + 8, i0:i0 + 64]                          # every tap separately
            per_tap = block.reshape(block.shape[0] * block.shape[1], 9)
            assert bool((per_tap.all(dim=0) | ~per_tap.any(dim=0)).all())
    assert 1.0 - mask.float().mean().item() == pytest.approx(0.75, abs=0.08)
    with pytest.raises(ValueError, match="granularity"):
        magnitude_prune_(m, 0.5, granularity="kernel")
