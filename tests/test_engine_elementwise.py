"""Per-channel elementwise ops and their one-pass chains (csrc/engine/elementwise.cpp).

Every ISA does the same float operations in the same order, so engine outputs are bit-identical across
ISAs (the binary kernels are exact, the float GEMM is the same BLAS whatever the ISA). The AVX2 chain
works 64 and 8 channels at a time with a scalar tail: channel counts around those edges, every stage
kind, chains of several stages after float and binary producers and after a fused max-pool.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import onebit
from onebit.export import export
from onebit.kernels import available_isas, use_isa
from onebit.nn import BinaryConv2d, RPReLU
from export.toy_models import CORPUS, build


def close(y, z, rel: float = 1e-4) -> bool:
    y, z = torch.as_tensor(y), torch.as_tensor(z)
    return y.shape == z.shape and bool((y - z).abs().max() <= rel * y.abs().max().clamp_min(1e-6))


class Chains(nn.Module):
    """conv -> BN -> + x -> RPReLU -> hardtanh; conv -> affine-free BN -> PReLU -> ReLU; all fused stages."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c)
        self.act1 = RPReLU(c)
        self.clip = nn.Hardtanh(-0.7, 0.9)
        self.conv2 = nn.Conv2d(c, c, 1)
        self.bn2 = nn.BatchNorm2d(c)
        self.act2 = nn.PReLU(c)
        self.pool = nn.MaxPool2d(2)
        self.bn3 = nn.BatchNorm2d(c)

    def forward(self, x):
        y = self.clip(self.act1(self.bn1(self.conv1(x)) + x))
        y = torch.relu(self.act2(self.bn2(self.conv2(y))))
        return self.bn3(self.pool(y))


def chains(c: int, seed: int = 0):
    torch.manual_seed(seed)
    model = Chains(c).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3), m.running_var.uniform_(0.5, 2.0), m.weight.uniform_(-1, 1)
            if isinstance(m, (RPReLU, nn.PReLU)):
                for p in m.parameters():
                    p.uniform_(-0.5, 0.5)
    return model, torch.randn(2, c, 6, 5)


CHANNELS = [1, 7, 8, 9, 63, 64, 65, 72, 136]


@pytest.mark.parametrize("quantize", [None, "int8"])
@pytest.mark.parametrize("c", CHANNELS)
def test_stage_chains_across_isas_and_fusion(c, quantize, monkeypatch):
    model, x = chains(c)
    with torch.no_grad():
        y = model(x)
        blob = export(model, x, quantize=quantize)
    outs = {}
    for isa in available_isas():
        with use_isa(isa):
            outs[isa] = onebit.Engine(blob, num_threads=2)(x.numpy())
            monkeypatch.setenv("ONEBIT_ENGINE_FUSE", "0")
            plain = onebit.Engine(blob)(x.numpy())
            monkeypatch.delenv("ONEBIT_ENGINE_FUSE")
        np.testing.assert_array_equal(outs[isa].view(np.uint32), plain.view(np.uint32))
        np.testing.assert_array_equal(outs[isa].view(np.uint32), outs["portable"].view(np.uint32))
    if quantize is None:
        assert close(y, outs["portable"])


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_outputs_are_bit_identical_across_isas(name):
    model, x = build(name)
    with torch.no_grad():
        blob = export(model, x)
    ref = None
    for isa in available_isas():
        with use_isa(isa):
            out = onebit.Engine(blob)(x.numpy()).view(np.uint32)
        if ref is None:
            ref = out
        np.testing.assert_array_equal(out, ref, err_msg=isa)


def test_binary_conv_transform_in_the_chain_across_isas():
    """A float-output bconv2d with BN runs float(acc) * alpha + beta, the BN and its stages in one pass
    (OutputTransform::epilogue_acc). Exported betas are 0 here (then one rounding or two give the same
    value), so random alphas and betas: the product must round once and the sum once, as acc2float does."""
    from onebit.export import reference
    from onebit.export.format import read_model, write_model

    model, x = build("bireal")
    with torch.no_grad():
        mf = read_model(export(model, x))
    rng = np.random.default_rng(0)
    ops = [op for op in mf.graph["ops"] if op["op"] == "bconv2d" and op["attrs"]["output"] == "float"]
    assert ops and all("bn_scale" in op["tensors"] for op in ops)
    for op in ops:
        for role, lo, hi in (("alpha", 0.3, 1.7), ("beta", -0.4, 0.4)):
            t = mf.tensors[op["tensors"][role]]
            mf.tensors[op["tensors"][role]] = rng.uniform(lo, hi, t.shape).astype(np.float32)
    blob = write_model(mf)
    outs = []
    for isa in available_isas():
        with use_isa(isa):
            outs.append(onebit.Engine(blob, num_threads=2)(x.numpy()).view(np.uint32))
        np.testing.assert_array_equal(outs[-1], outs[0], err_msg=isa)
    assert close(reference.run(blob, x), outs[0].view(np.float32))


def residual_blocks(c: int, method: str, seed: int = 0):
    """stem -> block(c, c) -> block(c, 2c, stride 2) -> head: each block's float output feeds its residual
    and one or two binarizers (ReActNet's downsample block: two 1x1 convs with their own thresholds)."""
    from onebit.nn import BinaryBasicBlock, ReActNetBlock

    torch.manual_seed(seed)
    spec = onebit.methods.get(method)
    block = ReActNetBlock if method == "reactnet" else BinaryBasicBlock
    model = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                          block(c, c, 1, spec=spec), block(c, 2 * c, 2, spec=spec),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * c, 10)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():  # thresholds, RPReLU shifts, BN affine off their inits
            if p.dim() <= 1 or "bias" in name:
                p.add_(0.2 * torch.randn_like(p))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3), m.running_var.uniform_(0.5, 2.0)
    return model, torch.randn(2, 3, 6, 6)


@pytest.mark.parametrize("method", ["reactnet", "si-bnn", "bireal"])
@pytest.mark.parametrize("c", [1, 8, 9, 63, 64, 65, 72, 136])
def test_residual_blocks_fused_and_across_isas(c, method, monkeypatch):
    """Float bconv2d outputs through their fused chains (BN, add, RPReLU) into binarizers and residuals:
    equal to the unfused ops and across ISAs at word and vector edges of the channel count."""
    model, x = residual_blocks(c, method)
    with torch.no_grad():
        blob = export(model, x)
    outs = []
    for isa in available_isas():
        with use_isa(isa):
            fused = onebit.Engine(blob, num_threads=2)
            monkeypatch.setenv("ONEBIT_ENGINE_FUSE", "0")
            plain = onebit.Engine(blob)
            monkeypatch.delenv("ONEBIT_ENGINE_FUSE")
            outs.append(fused(x.numpy()).view(np.uint32))
            np.testing.assert_array_equal(outs[-1], plain(x.numpy()).view(np.uint32))
            np.testing.assert_array_equal(outs[-1], outs[0], err_msg=isa)
    with torch.no_grad():
        assert close(model(x), outs[0].view(np.float32))


class ZerosAtThreshold(nn.Module):
    """bconv2d -> BN -> ReLU (many exact zeros) read by a binarizer whose threshold is 0 and by a residual
    add: x < 0 (sign) and x > 0 (Heaviside) are false on those zeros, x <= 0 / x >= 0 would not be (a
    fused bitpack was tried and measured no faster: BENCHMARKS.md; this guards any such path)."""

    def __init__(self, c: int, quantizer: str):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.conv1 = BinaryConv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = BinaryConv2d(c, c, 3, padding=1, bias=False, input_quantizer=quantizer)
        self.bn2 = nn.BatchNorm2d(c)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 4))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(self.stem(x))))
        return self.head(self.bn2(self.conv2(y)) + y)


@pytest.mark.parametrize("quantizer", ["ste_sign", "ste_heaviside"])
@pytest.mark.parametrize("c", [9, 64, 72])
def test_fused_bits_at_the_threshold(c, quantizer, monkeypatch):
    torch.manual_seed(0)
    model = ZerosAtThreshold(c, quantizer).eval()
    x = torch.randn(2, 3, 5, 7)
    with torch.no_grad():
        blob = export(model, x)
        y = model(x)
    for isa in available_isas():
        with use_isa(isa):
            fused = onebit.Engine(blob)
            monkeypatch.setenv("ONEBIT_ENGINE_FUSE", "0")
            plain = onebit.Engine(blob)
            monkeypatch.delenv("ONEBIT_ENGINE_FUSE")
            np.testing.assert_array_equal(fused(x.numpy()), plain(x.numpy()))
    assert close(y, fused(x))
