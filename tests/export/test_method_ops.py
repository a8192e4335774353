"""Converter + engine for the method ops of issue 6 and the zoo's extra layers, on targeted toy models:
DySign/DyPReLU variants (mean_std statistics, tanh bound, binary linear), Elastic-Link channel paths,
SBNN's sparse domain (beta = 0), Si-BNN scales of every sign, non-uniform adaptive pooling."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import onebit
from onebit.export import export, read_model, reference
from onebit.kernels import available_isas, use_isa
from onebit.nn import BinaryConv2d, BinaryLinear, DyPReLU, ElasticLink
from zoo_cases import near_tie, randomize_


def close(y, z, rel: float = 1e-4) -> bool:
    z = torch.as_tensor(z)
    return y.shape == z.shape and bool((y - z).abs().max() <= rel * y.abs().max().clamp_min(1e-6))


def _stem(c: int) -> list[nn.Module]:
    return [nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)]


def _head(c: int) -> list[nn.Module]:
    return [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10)]


def check(model: nn.Module, shape, seed: int = 0, after=None, file: bool = False):
    """Randomize (then ``after(model)``), export, compare reference and engine (every ISA) with PyTorch;
    return the op types (and the parsed file if ``file``)."""
    torch.manual_seed(seed)
    model = randomize_(model, torch.empty(2, *shape), seed)
    if after is not None:
        after(model)
    for k in range(10):
        x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(k))
        if not near_tie(model, x):
            break
    blob = export(model, x)
    with torch.no_grad():
        y = model(x)
    assert close(y, reference.run(blob, x))
    for isa in available_isas():
        with use_isa(isa):
            assert close(y, onebit.Engine(blob, num_threads=2)(x)), isa
    ops = {op["op"] for op in read_model(blob).graph["ops"]}
    return (ops, read_model(blob)) if file else ops


DYSIGN = {"name": "dysign", "reduction": 4, "statistic": "mean_std", "bound": "tanh"}


def test_dybnn_variants():
    model = nn.Sequential(*_stem(16), BinaryConv2d(16, 24, 3, padding=1, bias=False, input_quantizer=DYSIGN),
                          nn.BatchNorm2d(24), DyPReLU(24, reduction=4, statistic="mean_std"),
                          BinaryConv2d(24, 32, 3, stride=2, padding=1, bias=False, input_quantizer="dysign"),
                          nn.BatchNorm2d(32), nn.Flatten(), BinaryLinear(32 * 4 * 4, 20, input_quantizer=DYSIGN),
                          nn.BatchNorm1d(20), nn.Linear(20, 10))
    ops = check(model, (3, 8, 8))
    assert {"dybitpack", "channel_stats", "tanh", "dyprelu"} <= ops


@pytest.mark.parametrize("cin, cout, stride, options", [
    (16, 8, 1, {"squeeze": "sum"}), (16, 8, 2, {}), (8, 16, 2, {"expand": "interleave"}),
    (8, 24, 1, {"gate": "scalar"}), (12, 8, 2, {}),                      # 12 -> 8: the 1x1-conv path
])
def test_elastic_link_paths(cin, cout, stride, options):
    conv = BinaryConv2d(cin, cout, 3, stride=stride, padding=1, bias=False, input_quantizer="approx_sign")
    link = ElasticLink.around(conv, nn.BatchNorm2d(cout), **options)
    model = nn.Sequential(*_stem(cin), link, nn.Hardtanh(), *_head(cout))
    assert "elastic_add" in check(model, (3, 9, 9))


def test_sbnn_zoo_model_with_skewed_weights():
    """A zoo model in SBNN's domain with ~90 % of the weights at one value (alpha != -beta)."""
    model = onebit.models.create("resnet20", num_classes=10, method="sbnn", width_mult=0.5)
    for m in model.modules():
        if isinstance(m, BinaryConv2d):
            with torch.no_grad():
                m.weight.copy_(torch.where(torch.rand_like(m.weight) < 0.9, -1.0, 1.0) * m.weight.abs())
    assert "sbconv2d" in check(model, (3, 16, 16))


def test_sbnn_beta_zero():
    """beta = 0 exactly (SBNN's sparse domain): the engine skips the box-sum term and the mask's zero words."""
    conv = BinaryConv2d(16, 24, 3, padding=1, bias=False, input_quantizer="approx_sign",
                        weight_quantizer="domain_weight")
    model = nn.Sequential(*_stem(16), conv, nn.BatchNorm2d(24), nn.Hardtanh(),
                          BinaryConv2d(24, 8, 3, padding=1, pad_value=1.0, weight_quantizer="domain_weight"),
                          nn.BatchNorm2d(8), *_head(8))

    def sparse(model):
        with torch.no_grad():
            for m in (model[2], model[5]):
                m.weight_quantizer.phi.copy_(m.weight_quantizer.tau)           # beta = phi - tau = 0
                m.weight.copy_(torch.where(torch.rand_like(m.weight) < 0.9, -1.0, 1.0) * m.weight.abs())

    ops, mf = check(model, (3, 8, 8), after=sparse, file=True)
    sb = [op for op in mf.graph["ops"] if op["op"] == "sbconv2d"]
    assert len(sb) == 2 and all(not mf.tensors[op["tensors"]["beta"]].any() for op in sb)


def test_si_bnn_scales_of_every_sign():
    """H(s (x - b)) with s > 0, s < 0 and s = 0 in one layer, packed from float (no folding) and folded."""
    q = {"name": "si_heaviside"}
    model = nn.Sequential(*_stem(8), BinaryConv2d(8, 16, 3, padding=1, bias=False, input_quantizer=q),
                          nn.BatchNorm2d(16), BinaryConv2d(16, 8, 3, padding=1, bias=False, input_quantizer=q),
                          nn.BatchNorm2d(8), *_head(8))
    model(torch.randn(2, 3, 8, 8))   # materialize the per-channel quantizers
    with torch.no_grad():
        for conv in (model[2], model[4]):
            s = conv.input_quantizer.scale
            s.copy_(torch.linspace(-1, 1, s.numel()).reshape(s.shape))
            s.view(-1)[1] = 0.0
    ops = check(model, (3, 8, 8))
    assert "bitpack" in ops


@pytest.mark.parametrize("size, out, pool", [(5, 3, nn.AdaptiveAvgPool2d), (5, 3, nn.AdaptiveMaxPool2d),
                                             (2, 5, nn.AdaptiveAvgPool2d), (7, 3, nn.AdaptiveMaxPool2d)])
def test_adaptive_pools(size, out, pool):
    model = nn.Sequential(nn.Conv2d(3, 8, 1), pool(out), nn.Flatten(), nn.Linear(8 * out * out, 10))
    ops = check(model, (3, size, size))
    assert ("adaptive_pool" in ops) == (size % out != 0 and size != 7)


@pytest.mark.parametrize("groups, pad_value, stride, cin", [(1, 0.0, 1, 16), (1, 1.0, 2, 70), (2, 0.0, 1, 24),
                                                             (4, 1.0, 1, 8), (1, 0.0, 1, 130)])
def test_sbnn_engine_matches_reference_exactly(groups, pad_value, stride, cin):
    """sbconv2d / sblinear through bconv2d's kMask mode (the block-sparse sbgemm on the mask):
    bit-identical to the reference on every ISA, with dead (all-zero mask) output channels, zero and
    +1 padding, grouped and word-unaligned channel counts, beta = 0 and beta != 0."""
    cout = 8 * groups
    conv = BinaryConv2d(cin, cout, 3, stride=stride, padding=1, groups=groups, bias=False, pad_value=pad_value,
                        input_quantizer="approx_sign", weight_quantizer="domain_weight")
    lin = BinaryLinear(cout * 4, 12, input_quantizer="approx_sign", weight_quantizer="domain_weight")
    model = nn.Sequential(*_stem(cin), conv, nn.BatchNorm2d(cout), nn.AdaptiveAvgPool2d(2), nn.Flatten(), lin)
    torch.manual_seed(1)
    model = randomize_(model, torch.empty(2, 3, 9, 9), 1).eval()
    with torch.no_grad():
        for m, beta_zero in ((conv, True), (lin, False)):
            m.weight_quantizer.tau.fill_(0.75)
            m.weight_quantizer.phi.fill_(0.75 if beta_zero else 0.5)
            keep = torch.rand_like(m.weight) < 0.3
            keep[: m.weight.shape[0] // 2] = False                                 # dead output channels
            m.weight.copy_(torch.where(keep, 1.0, -1.0) * (m.weight.abs() + 1e-3))
    x = torch.randn(3, 3, 9, 9, generator=torch.Generator().manual_seed(5))
    blob = export(model, x)
    assert {"sbconv2d", "sblinear"} <= {op["op"] for op in read_model(blob).graph["ops"]}
    ref = reference.run(blob, x)
    with torch.no_grad():
        assert close(model(x), ref)
    for isa in available_isas():
        with use_isa(isa):
            for threads in (1, 2):
                assert torch.equal(onebit.Engine(blob, num_threads=threads)(x), ref), (isa, threads)


def _block_sparse_sbnn(sparsity: float, cin: int = 64) -> nn.Module:
    """SBNN's sparse domain (beta = 0) pruned in engine blocks (8 outputs x 64 inputs x 1 tap)."""
    model = nn.Sequential(*_stem(cin), BinaryConv2d(cin, 72, 3, padding=1, bias=False, input_quantizer="approx_sign",
                                                   weight_quantizer="domain_weight"),
                          nn.BatchNorm2d(72), nn.Flatten())   # binary layer output: exact in the engine
    torch.manual_seed(2)
    model = randomize_(model, torch.empty(2, 3, 8, 8), 2).eval()
    with torch.no_grad():
        q = model[2].weight_quantizer
        q.tau.fill_(0.5), q.phi.fill_(0.5)                                   # alpha = 1, beta = 0
    onebit.sparsity.magnitude_prune_(model, sparsity, granularity="block")
    return model


def test_sbnn_block_sparse_mask_is_stored_as_nonzero_words():
    """A block-pruned mask is written as index + nonzero words (smaller than dense), and runs exactly."""
    model = _block_sparse_sbnn(0.75)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    blob = export(model, x)
    mf = read_model(blob)
    (op,) = [op for op in mf.graph["ops"] if op["op"] == "sbconv2d"]
    assert "mask" not in op["tensors"] and {"mask_index", "mask_words"} <= set(op["tensors"])
    dense_bytes = 72 * 9 * 8
    stored = sum(mf.tensors[op["tensors"][k]].nbytes for k in ("mask_index", "mask_words"))
    assert stored < 0.4 * dense_bytes
    ref = reference.run(blob, x)
    with torch.no_grad():
        assert close(model(x), ref)
    for isa in available_isas():
        with use_isa(isa):
            assert torch.equal(onebit.Engine(blob, num_threads=2)(x), ref), isa


def test_sbnn_malformed_sparse_masks_are_refused():
    from onebit.export import ModelFileError, write_model

    model = _block_sparse_sbnn(0.5, cin=40)            # 40 of 64 bits used: padding bits exist
    x = torch.randn(1, 3, 8, 8)
    mf = read_model(export(model, x))
    (op,) = [op for op in mf.graph["ops"] if op["op"] == "sbconv2d"]
    words = op["tensors"]["mask_words"]
    good = mf.tensors[words]
    for bad, match in ((good[:-1], "disagree"), (good | (1 << 63), "padding bits")):
        mf.tensors[words] = bad.copy()
        with pytest.raises(ModelFileError, match=match):
            onebit.Engine(write_model(mf))
    mf.tensors[words] = good
    mf.tensors["extra_mask"] = numpy_zeros_like_dense(op)
    op["tensors"]["mask"] = "extra_mask"
    with pytest.raises(ModelFileError, match="either tensor 'mask' or both"):
        onebit.Engine(write_model(mf))


def numpy_zeros_like_dense(op):
    import numpy as np

    a = op["attrs"]
    return np.zeros((a["out_channels"], *a["kernel"], (a["in_channels"] // a["groups"] + 63) // 64), dtype=np.uint64)


def test_elastic_link_identity_path_is_fused_into_the_binary_conv(monkeypatch):
    """The identity link (C_in = C_out, stride 1) runs in the bconv2d's epilogue: elastic_add reports 0 s,
    and the output is bit-identical to the unfused ops (ONEBIT_ENGINE_FUSE=0) on every ISA."""
    conv = BinaryConv2d(16, 16, 3, padding=1, bias=False, input_quantizer="approx_sign")
    model = nn.Sequential(*_stem(16), ElasticLink.around(conv, nn.BatchNorm2d(16)), nn.Hardtanh(), *_head(16))
    assert "elastic_add" in check(model, (3, 9, 9))
    x = torch.randn(2, 3, 9, 9, generator=torch.Generator().manual_seed(3))
    blob = export(model.eval(), x)
    for isa in available_isas():
        with use_isa(isa):
            fused = onebit.Engine(blob, num_threads=2)
            monkeypatch.setenv("ONEBIT_ENGINE_FUSE", "0")
            plain = onebit.Engine(blob, num_threads=2)
            monkeypatch.delenv("ONEBIT_ENGINE_FUSE")
            assert torch.equal(fused(x).view(torch.int32), plain(x).view(torch.int32)), isa
    prof = {k: s for k, _, s in fused.profile(x[:1])}
    assert prof["elastic_add"] == 0.0 and prof["bconv2d"] > 0.0


@pytest.mark.parametrize("beta_zero", [True, False])
def test_sbnn_ops_take_fused_stages(beta_zero, monkeypatch):
    """sbconv2d runs its following per-channel ops (ReActNet-style RPReLU, residual add) in its epilogue,
    bit-identical to running them one by one, in both output paths (beta = 0 in the kernel; beta != 0
    with the box sums)."""
    model = onebit.models.create("resnet20", num_classes=10, method="sbnn", width_mult=0.5)
    torch.manual_seed(4)
    model = randomize_(model, torch.empty(2, 3, 16, 16), 4).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, BinaryConv2d):
                q = m.weight_quantizer
                q.tau.fill_(0.5), q.phi.fill_(0.5 if beta_zero else 0.2)
                m.weight.copy_(torch.where(torch.rand_like(m.weight) < 0.3, 1.0, -1.0) * m.weight.abs())
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    blob = export(model, x)
    assert "sbconv2d" in {op["op"] for op in read_model(blob).graph["ops"]}
    fused = onebit.Engine(blob, num_threads=2)
    monkeypatch.setenv("ONEBIT_ENGINE_FUSE", "0")
    plain = onebit.Engine(blob, num_threads=2)
    monkeypatch.delenv("ONEBIT_ENGINE_FUSE")
    assert torch.equal(fused(x).view(torch.int32), plain(x).view(torch.int32))
    prof = fused.profile(x[:1])
    after_sb = [prof[i + 1] for i, (k, _, _) in enumerate(prof[:-1]) if k == "sbconv2d"]
    fused_after = [s for k, _, s in after_sb if k in ("rprelu", "add", "affine")]
    assert fused_after and all(s == 0.0 for s in fused_after)   # ran in the sbconv2d's epilogue (0 s)
    with torch.no_grad():
        assert close(model(x), fused(x))
