"""export(..., quantize="int8"): int8 float layers (onebit/export/quantize.py, qconv2d / qlinear).

The reference executor (the spec) computes the integer sums exactly; the engine must equal it under
every ISA, thread count and batch split (integer sums do not depend on any of them). Against the float
model the error is that of 8-bit rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import onebit
from onebit.export import ModelFileError, export, reference
from onebit.export.format import read_model, write_model
from onebit.export.quantize import quantize_weights
from onebit.kernels import available_isas, use_isa
from export.toy_models import CORPUS, build


def close(y, z, rel: float = 1e-4) -> bool:
    y, z = torch.as_tensor(y), torch.as_tensor(z)
    return y.shape == z.shape and bool((y - z).abs().max() <= rel * y.abs().max().clamp_min(1e-6))


def float_layers(seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """Only float conv / linear layers, at odd K, groups, dilation, stride, padding and a 1x1 conv."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 20, 7, stride=2, padding=3), nn.BatchNorm2d(20), nn.ReLU(),     # K = 147 (odd)
        nn.Conv2d(20, 20, 3, padding=2, dilation=2, groups=4, bias=False),        # grouped, K = 45
        nn.Conv2d(20, 72, 1), nn.ReLU(),                                          # 1x1, K = 20
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(288, 33), nn.ReLU(), nn.Linear(33, 10)).eval()
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.5, 0.5), model[1].running_var.uniform_(0.5, 2.0)
    return model, torch.randn(5, 3, 19, 23)


@pytest.fixture(scope="module")
def quantized():
    out = {}
    for name in ["float_layers", *sorted(CORPUS)]:
        model, x = float_layers() if name == "float_layers" else build(name)
        with torch.no_grad():
            out[name] = (model, x, export(model, x, quantize="int8"))
    return out


def test_weights_per_output_channel():
    w = torch.randn(6, 3, 5, 5)
    w[2] = 0.0
    w[4, 0, 0, 0] = -10.0
    q, s = quantize_weights(w.numpy())
    assert q.dtype == np.int8 and q.shape == (6, 3, 5, 5) and s.dtype == np.float32
    assert s[2] == 0 and not q[2].any()
    assert q[4, 0, 0, 0] == -127 and np.abs(q).max() == 127 and np.abs(q).min() >= 0
    assert np.allclose(q * s[:, None, None, None], w.numpy(), atol=float(s.max()) / 2 + 1e-7)
    with pytest.raises(ValueError, match="finite"):
        quantize_weights(np.array([[np.inf, 1.0]], dtype=np.float32))


def test_graph_ops_and_size(quantized):
    model, x, blob = quantized["float_layers"]
    mf = read_model(blob)
    assert [op["op"] for op in mf.graph["ops"] if op["op"].startswith("q")] == ["qconv2d"] * 3 + ["qlinear"] * 2
    assert not any(op["op"] in ("conv2d", "linear") for op in mf.graph["ops"])
    assert mf.metadata["quantize"] == "int8"
    with torch.no_grad():
        assert len(blob) < 0.5 * len(export(model, x))
    with pytest.raises(ValueError, match="int4"):
        export(model, x, quantize="int4")


def test_reference_is_close_to_the_float_model(quantized):
    model, x, blob = quantized["float_layers"]
    with torch.no_grad():
        y = model(x)
    z = reference.run(blob, x)
    assert float((y - z).abs().max()) <= 0.05 * float(y.abs().max())


@pytest.mark.parametrize("isa", available_isas())
@pytest.mark.parametrize("name", ["float_layers", *sorted(CORPUS)])
def test_engine_matches_reference(quantized, name, isa):
    _, x, blob = quantized[name]
    with use_isa(isa):
        z = onebit.Engine(blob)(x)
    assert close(reference.run(blob, x), z)


@pytest.mark.parametrize("name", ["float_layers", "bireal", "binary_linear"])
def test_threads_and_batches_are_bit_identical(quantized, name):
    _, x, blob = quantized[name]
    one = onebit.Engine(blob)(x.numpy())
    np.testing.assert_array_equal(one, onebit.Engine(blob, num_threads=2)(x.numpy()))
    for i in range(x.shape[0]):
        np.testing.assert_array_equal(onebit.Engine(blob)(x[i:i + 1].numpy()), one[i:i + 1])


def test_zero_and_constant_inputs(quantized):
    """max |x| = 0: every activation quantizes to 0 and a layer returns its bias."""
    model, x, blob = quantized["float_layers"]
    zero = torch.zeros(2, *x.shape[1:])
    assert close(reference.run(blob, zero), onebit.Engine(blob)(zero))
    const = torch.full((1, *x.shape[1:]), -0.75)
    assert close(reference.run(blob, const), onebit.Engine(blob)(const))


def _replace_tensor(blob: bytes, role: str, fn) -> bytes:
    mf = read_model(blob)
    op = next(op for op in mf.graph["ops"] if op["op"] == "qconv2d")
    name = op["tensors"][role]
    mf.tensors[name] = fn(mf.tensors[name].copy())
    return write_model(mf)


def test_bad_quantized_tensors_are_refused(quantized):
    _, _, blob = quantized["float_layers"]

    def put_min(w):
        w.reshape(-1)[0] = -128
        return w

    with pytest.raises(ModelFileError, match="-128"):
        onebit.Engine(_replace_tensor(blob, "weight", put_min))
    with pytest.raises(ModelFileError, match="weight_scale"):
        onebit.Engine(_replace_tensor(blob, "weight_scale", lambda s: -s))
    with pytest.raises(ModelFileError, match="int8"):
        onebit.Engine(_replace_tensor(blob, "weight", lambda w: w.astype(np.float32)))


@pytest.mark.parametrize("kernel, stride, padding, dilation, groups, hw", [
    (7, 2, 3, 1, 1, 23),   # the ResNet stem's geometry: border and interior columns
    (7, 1, 3, 1, 1, 5),    # no interior column at all (every window crosses the border)
    (3, 3, 0, 1, 1, 10),   # stride larger than the kernel's reach, no padding
    (5, 2, 1, 1, 1, 9),    # padding narrower than the kernel's half
    (3, 1, 2, 2, 1, 8),    # dilation: the row-by-row path
    (3, 2, 1, 1, 2, 9),    # groups: the row-by-row path
    ("same", 1, "same", 1, 1, 8),  # an even kernel with padding="same": asymmetric padding
])
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_conv_geometries_float_and_int8(kernel, stride, padding, dilation, groups, hw):
    """im2col by tiles (interior columns kh-outer, border pixels row by row) for both float and int8 convs."""
    torch.manual_seed(1)
    k = 4 if kernel == "same" else kernel
    conv = nn.Conv2d(6, 10, k, stride=stride, padding=padding, dilation=dilation, groups=groups).eval()
    model = nn.Sequential(conv, nn.Flatten()).eval()
    x = torch.randn(3, 6, hw, hw + 1)
    with torch.no_grad():
        y = model(x)
        float_blob, int8_blob = export(model, x), export(model, x, quantize="int8")
    for isa in available_isas():
        with use_isa(isa):
            assert close(y, onebit.Engine(float_blob)(x)), isa
            assert close(reference.run(int8_blob, x), onebit.Engine(int8_blob, num_threads=2)(x)), isa
