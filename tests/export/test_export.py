"""Converter end to end: toy models -> .onebit -> reference executor == PyTorch eval; folding and errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import onebit
from onebit.export import ExportError, ModelFileError, export, read_model, reference, write_model
from onebit.export.fold import batchnorm_affine, step_threshold
from onebit.nn import BinaryConv2d
from toy_models import CORPUS, build


def close(y: torch.Tensor, z: torch.Tensor, rel: float = 1e-4) -> bool:
    return bool((y - z).abs().max() <= rel * y.abs().max().clamp_min(1e-6))


@pytest.fixture(scope="module")
def exported():
    out = {}
    for name in CORPUS:
        model, x = build(name)
        out[name] = (model, x, export(model, x))
    return out


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_reference_matches_pytorch_eval(exported, name):
    model, x, blob = exported[name]
    with torch.no_grad():
        y = model(x)
        r = reference.run(blob, x)
        r2 = reference.run(blob, -x[:2])   # another batch size, other signs
        y2 = model(-x[:2])
    assert r.shape == y.shape
    assert close(y, r) and close(y2, r2)


@pytest.mark.parametrize("name, fused", [("plain_zero_pad", 1), ("one_pad_stride2_xnor", 1), ("groups", 2),
                                         ("negative_gamma", 1), ("maxpool_bits", 1), ("binary_linear", 1)])
def test_chains_fold_into_bit_outputs(exported, name, fused):
    graph = read_model(exported[name][2]).graph
    bits_out = [op for op in graph["ops"] if op["attrs"].get("output") == "bits"]
    assert len(bits_out) == fused
    assert sum(op["op"] == "bitpack" for op in graph["ops"]) == 1  # only the float stem output is packed
    if name == "maxpool_bits":
        assert [op["op"] for op in graph["ops"]].count("bmaxpool") == 1


def test_file_is_self_describing(exported):
    mf = read_model(exported["plain_zero_pad"][2])
    g = mf.graph
    assert g["values"][g["inputs"][0]] == {"kind": "float", "shape": [3, 12, 12]}
    conv = next(op for op in g["ops"] if op["op"] == "bconv2d")
    assert conv["attrs"]["pad"] == "zero" and conv["attrs"]["mode"] == "xor"
    w = mf.tensors[conv["tensors"]["weight"]]
    assert w.dtype.name == "uint64" and list(w.shape) == [65, 3, 3, 1]
    assert mf.metadata["producer"] == "onebit"


def test_save_and_load(tmp_path, exported):
    model, x, blob = exported["bireal"]
    onebit.export.save(model, x, tmp_path / "m.onebit")
    assert (tmp_path / "m.onebit").read_bytes() == blob
    assert onebit.export.load(tmp_path / "m.onebit").graph == read_model(blob).graph
    assert onebit.export_model is onebit.export.export


def test_batchnorm_affine_is_pytorch_exact():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(64).eval()
    with torch.no_grad():
        bn.running_mean.normal_(0, 3), bn.running_var.uniform_(0.1, 5), bn.weight.normal_(), bn.bias.normal_()
    x = torch.randn(4, 64, 7, 7)
    s, t = batchnorm_affine(bn, "bn")
    fma = (x.double() * s.double()[:, None, None] + t.double()[:, None, None]).float()
    assert torch.equal(bn(x), fma)


def test_step_threshold_cases():
    k = 3  # d = -3..3
    bits = torch.tensor([[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0], [1] * 7, [0] * 7], dtype=torch.bool)
    t, flip = step_threshold(bits, k)
    d = torch.arange(-k, k + 1)
    rebuilt = (d[None, :] >= torch.from_numpy(t).long()[:, None]) ^ torch.from_numpy(flip).bool()[:, None]
    assert torch.equal(rebuilt, bits)
    with pytest.raises(ValueError, match="not monotone"):
        step_threshold(torch.tensor([[0, 1, 0, 1, 1, 1, 1]], dtype=torch.bool), k)


def test_unsupported_module_is_named():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.GELU(), BinaryConv2d(8, 8, 3))
    with pytest.raises(ExportError, match=r"module '1' \(GELU\).*Supported"):
        export(model, torch.randn(1, 3, 8, 8))


def test_untraceable_module_is_named():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    model = nn.Sequential(nn.Conv2d(3, 4, 1), Branchy())
    with pytest.raises(ExportError, match=r"cannot trace module '1'"):
        export(model, torch.randn(1, 3, 4, 4))


def test_unsupported_quantizer_is_named():
    class Ternary(onebit.quantizers.Quantizer):
        name = "ternary"

        def forward(self, x):
            return torch.sign(x)

    model = nn.Sequential(BinaryConv2d(4, 4, 3, input_quantizer=Ternary()))
    with pytest.raises(ExportError, match=r"module '0'.*'ternary'.*supported"):
        export(model, torch.randn(1, 4, 6, 6))
    model = nn.Sequential(BinaryConv2d(4, 4, 3, weight_quantizer=Ternary()))
    with torch.no_grad():
        model[0].weight[0, 0] = 0.0   # three weight values in channel 0
    with pytest.raises(ExportError, match=r"module '0'.*more than two values"):
        export(model, torch.randn(1, 4, 6, 6))


def _tampered(blob: bytes, edit) -> bytes:
    mf = read_model(blob)
    edit(mf)
    return write_model(mf)


@pytest.mark.parametrize("edit, match", [
    (lambda mf: mf.graph["ops"][0].update(op="conv3d"), "unknown op"),
    (lambda mf: mf.graph["ops"][-1]["inputs"].__setitem__(0, "nope"), "not defined"),
    (lambda mf: mf.graph["ops"][0]["attrs"].update(stride=[0, 1]), "bad attribute"),
    (lambda mf: mf.tensors.update({next(iter(mf.tensors)): mf.tensors[next(iter(mf.tensors))][:1]}), "must be"),
    (lambda mf: mf.graph["values"][mf.graph["outputs"][0]].update(shape=[11]), "expected"),
    (lambda mf: mf.graph.update(version=99), "version"),
])
def test_malformed_graphs_raise_model_file_error(exported, edit, match):
    bad = _tampered(exported["plain_zero_pad"][2], edit)
    with pytest.raises(ModelFileError, match=match):
        reference.run(bad, exported["plain_zero_pad"][1])
    with pytest.raises(ModelFileError, match=match):
        onebit.Engine(bad)


def test_truncated_file_raises(exported):
    blob = exported["plain_zero_pad"][2]
    with pytest.raises(ModelFileError):
        onebit.Engine(blob[: len(blob) // 2])


def test_file_size_is_within_5_percent_of_one_bit_per_binary_weight():
    """Engine issue: file <= 1.05 x (binary params / 8 + 4 bytes per float param), on a model whose
    layers are word-aligned (vgg_small: 128-512 channels); benchmarks/bench_file_size.py has the zoo."""
    from onebit.summary import summary

    torch.manual_seed(0)
    model = onebit.models.create("vgg_small", num_classes=10, in_chans=3, method="bnn").eval()
    ideal = summary(model, (1, 3, 32, 32), print_table=False).memory_bytes
    size = len(export(model, torch.randn(1, 3, 32, 32)))
    assert ideal < size <= 1.05 * ideal
