"""Max-pool fused into the int8 conv that produces its input (csrc/engine/fused_pool.cpp).

The fused op computes the conv's output rows into a per-thread ring and pools them as it goes; it must
give the bit-identical result of the conv and the max-pool run one after the other
(ONEBIT_ENGINE_FUSE=0) at every pool geometry, ISA, thread count and batch, and the reference's values.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import onebit
from onebit.export import export, reference
from onebit.kernels import available_isas, use_isa


def close(y, z, rel: float = 1e-4) -> bool:
    y, z = torch.as_tensor(y), torch.as_tensor(z)
    return y.shape == z.shape and bool((y - z).abs().max() <= rel * y.abs().max().clamp_min(1e-6))


class Stem(nn.Module):
    """conv -> BN -> [+ x] -> ReLU -> max-pool [-> BN -> hardtanh] (-> a second conv: the pool is not the
    output)."""

    def __init__(self, cin, cout, conv, pool, residual=False, groups=1, post=False):
        super().__init__()
        k, s, p = conv
        self.conv = nn.Conv2d(cin, cout, k, stride=s, padding=p, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.pool = nn.MaxPool2d(*pool[:3], ceil_mode=pool[3] if len(pool) > 3 else False)
        self.residual = residual
        self.post = nn.Sequential(nn.BatchNorm2d(cout), nn.Hardtanh()) if post else nn.Identity()
        self.head = nn.Conv2d(cout, 5, 1)

    def forward(self, x):
        y = self.bn(self.conv(x))
        if self.residual:
            y = y + x
        return self.head(self.post(self.pool(torch.relu(y))))


def build(cin=3, cout=16, conv=(7, 2, 3), pool=(3, 2, 1), hw=(21, 26), residual=False, groups=1, post=False, seed=0):
    torch.manual_seed(seed)
    model = Stem(cin, cout, conv, pool, residual, groups, post).eval()
    with torch.no_grad():
        for bn in [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]:
            bn.running_mean.uniform_(-0.3, 0.3), bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(-1.0, 1.0)  # negative gammas too
    x = torch.randn(3, cin, *hw)
    with torch.no_grad():
        return x, export(model, x, quantize="int8")


def engines(blob, threads, monkeypatch):
    fused = onebit.Engine(blob, num_threads=threads)
    monkeypatch.setenv("ONEBIT_ENGINE_FUSE", "0")
    plain = onebit.Engine(blob, num_threads=threads)
    monkeypatch.delenv("ONEBIT_ENGINE_FUSE")
    return fused, plain


CASES = {
    "resnet_stem": dict(),                                    # 7x7/2 conv, 3x3/2 pool, padding 1
    "pool_2x2": dict(pool=(2, 2, 0)),                         # no overlap between windows
    "pool_stride_1": dict(pool=(3, 1, 1), hw=(9, 11)),        # every ring row reused twice
    "pool_stride_3": dict(pool=(3, 3, 0), hw=(20, 17)),       # stride = kernel, odd rows left over
    "pool_gap": dict(pool=(2, 3, 0), hw=(22, 22)),            # stride > kernel: rows skipped
    "pool_5x5_ceil": dict(pool=(5, 2, 2, True), hw=(23, 19)),  # ceil mode: a clipped last window
    "pool_3x3_ceil": dict(pool=(3, 2, 0, True), hw=(18, 18)),
    "wide_channels": dict(cout=80, conv=(3, 1, 1), hw=(7, 9)),  # few pixel tiles: 64-channel tiles
    "groups": dict(cin=4, cout=8, conv=(3, 1, 1), groups=2, hw=(10, 12)),
    "residual": dict(cin=16, cout=16, conv=(3, 1, 1), residual=True, hw=(12, 10)),  # add stage with z
    "wide_rows": dict(cin=2, cout=8, conv=(1, 1, 0), hw=(6, 700)),  # a conv row wider than a tile
    "bn_after_pool": dict(post=True),                         # AlexNet: pool, then BN and hardtanh (stages)
}


@pytest.fixture(scope="module")
def blobs():
    return {name: build(**kw) for name, kw in CASES.items()}


@pytest.mark.parametrize("isa", available_isas())
@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_equals_unfused_and_reference(blobs, name, isa, monkeypatch):
    x, blob = blobs[name]
    with use_isa(isa):
        for threads in (1, 2):
            fused, plain = engines(blob, threads, monkeypatch)
            y = fused(x.numpy())
            np.testing.assert_array_equal(y.view(np.uint32), plain(x.numpy()).view(np.uint32))
            for i in range(x.shape[0]):  # one sample at a time: the same values
                np.testing.assert_array_equal(fused(x[i:i + 1].numpy()), y[i:i + 1])
    assert close(reference.run(blob, x), y)


def test_fusion_happens_and_profile_keeps_graph_order(blobs, monkeypatch):
    x, blob = blobs["resnet_stem"]
    fused, plain = engines(blob, 1, monkeypatch)
    prof = dict(((k, n), s) for k, n, s in fused.profile(x[:1]))
    pools = [key for key in prof if key[0] == "maxpool"]
    assert len(pools) == 1 and prof[pools[0]] == 0.0          # runs inside the qconv2d
    assert [(k, n) for k, n, _ in fused.profile(x[:1])] == [(op["op"], op["name"]) for op in fused.ops]
    assert all(s > 0.0 for (k, _), s in prof.items() if k == "qconv2d")
    assert dict(((k, n), s) for k, n, s in plain.profile(x[:1]))[pools[0]] > 0.0


def test_stages_after_the_pool_run_fused(blobs):
    x, blob = blobs["bn_after_pool"]
    prof = onebit.Engine(blob).profile(x[:1])
    kinds = [k for k, _, _ in prof]
    assert "affine" in kinds and "hardtanh" in kinds
    assert all(s == 0.0 for k, _, s in prof if k in ("maxpool", "affine", "hardtanh"))


class TwoReaders(nn.Module):
    """The conv's output feeds the max-pool and a second branch: no fusion, still the same values."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.down = nn.Conv2d(8, 8, 2, stride=2)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        return self.pool(y) + self.down(y)


def test_conv_read_by_another_op_is_not_fused(monkeypatch):
    torch.manual_seed(0)
    model = TwoReaders().eval()
    x = torch.randn(2, 3, 10, 12)
    with torch.no_grad():
        blob = export(model, x, quantize="int8")
    fused, plain = engines(blob, 2, monkeypatch)
    prof = dict(((k, n), s) for k, n, s in fused.profile(x[:1]))
    assert [s for (k, _), s in prof.items() if k == "maxpool"][0] > 0.0
    np.testing.assert_array_equal(fused(x.numpy()), plain(x.numpy()))
    assert close(reference.run(blob, x), fused(x))


def test_bireal_stem_is_fused():
    """The zoo's ResNet-style stem (conv 7x7/2, BN, max-pool 3x3/2) in an int8 file runs fused."""
    model = onebit.models.create("bireal18", num_classes=10, in_chans=3, method="bireal").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        blob = export(model, x, quantize="int8")
    prof = onebit.Engine(blob).profile(x)
    assert [s for k, _, s in prof if k == "maxpool"] == [0.0]


@pytest.mark.parametrize("name", ["resnet_stem", "bn_after_pool"])
def test_every_fusion_selection_gives_the_same_bits(blobs, name, monkeypatch):
    x, blob = blobs[name]
    outs = []
    for value in ["1", "0", "pool", "pool,stages", "pool,stages,one_pass", "stages,one_pass"]:
        monkeypatch.setenv("ONEBIT_ENGINE_FUSE", value)
        outs.append(onebit.Engine(blob, num_threads=2)(x.numpy()).view(np.uint32))
        np.testing.assert_array_equal(outs[-1], outs[0], err_msg=value)
