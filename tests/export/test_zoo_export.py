"""Every zoo model x applicable method exports, and the reference executor and the C++ engine (every
ISA) match PyTorch eval: float outputs within 1e-4 relative (bits feeding them must then agree)."""

from __future__ import annotations

import pytest
import torch

import onebit
from onebit.export import export, read_model, reference
from onebit.kernels import available_isas, use_isa
from steering import engine_decisions, steered_run, torch_decisions
from zoo_cases import BASELINES, ISSUE6, build, cases

@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models: torch's intra-op threads only add overhead (and contend on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# the op that proves a method's own inference path is used (not a float fallback)
METHOD_OPS = {"dybnn": "dybitpack", "elastic-link": "elastic_add", "sbnn": "sbconv2d"}


def close(y: torch.Tensor, z, rel: float = 1e-4) -> bool:
    z = torch.as_tensor(z)
    return y.shape == z.shape and bool((y - z).abs().max() <= rel * y.abs().max().clamp_min(1e-6))


def check(name: str, method, **kwargs) -> bytes:
    model, x = build(name, method, **kwargs)
    blob = export(model, x)
    with torch.no_grad():
        y = model(x)
    assert close(y, reference.run(blob, x)), f"reference != PyTorch for {name} / {method}"
    for isa in available_isas():
        with use_isa(isa):
            assert close(y, onebit.Engine(blob)(x)), f"engine ({isa}) != PyTorch for {name} / {method}"
    return blob


@pytest.mark.parametrize("name, method", cases(BASELINES + ISSUE6))
def test_zoo_model_exports_and_matches(name, method):
    blob = check(name, method)
    ops = {op["op"] for op in read_model(blob).graph["ops"]}
    if method is not None:
        assert ops & {"bconv2d", "blinear", "sbconv2d", "sblinear"}, "no binary layer was exported"
    if method in METHOD_OPS:
        assert METHOD_OPS[method] in ops


@pytest.mark.parametrize("name", onebit.models.list())
def test_zoo_model_int8_engine_matches_reference(name):
    """export(quantize="int8") of every zoo model (its first method): the engine (every ISA) equals the
    reference executor of the same file (integer sums: no rounding differences in the quantized ops)."""
    model, x = build(name, onebit.models.model_info(name).methods[0])
    blob = export(model, x, quantize="int8")
    ops = {op["op"] for op in read_model(blob).graph["ops"]}
    assert ops & {"qconv2d", "qlinear"} and not ops & {"conv2d", "linear"}
    want = reference.run(blob, x)
    for isa in available_isas():
        with use_isa(isa):
            assert close(want, onebit.Engine(blob)(x)), f"engine ({isa}) != reference for {name} int8"


#: the full-size case the default tier runs too (~10 s), so the steered comparison is always exercised
FULL_SIZE_DEFAULT = ("bireal18", "bireal")


@pytest.mark.parametrize("name, method", [
    pytest.param(*case, marks=[] if case == FULL_SIZE_DEFAULT else [pytest.mark.slow])
    for case in cases(BASELINES + ISSUE6)])
def test_zoo_model_full_size(name, method):
    """Full size: the reference executor steered along PyTorch's binarizer decisions matches PyTorch, and
    steered along the engine's (every ISA) matches the engine; each decision taken over is a near-tie
    (steering.py: a full-size input always has some, and one flip changes everything after it)."""
    model, x = build(name, method, full=True, batch=1)
    blob = export(model, x)
    mf = read_model(blob)
    with torch.no_grad():
        y = model(x)
    z, _ = steered_run(mf, x, torch_decisions(model, x))
    assert close(y, z), f"reference != PyTorch for {name} / {method}"
    for isa in available_isas():
        with use_isa(isa):
            got = onebit.Engine(blob)(x)
            z, _ = steered_run(mf, x, engine_decisions(mf, x))
        assert close(z, got), f"engine ({isa}) != reference for {name} / {method}"
