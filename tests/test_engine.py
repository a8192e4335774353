"""The C++ engine == PyTorch eval on the toy corpus, under every ISA; API, threads, errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import onebit
from onebit.export import export
from onebit.kernels import available_isas, use_isa
from export.toy_models import CORPUS, build


def close(y, z, rel: float = 1e-4) -> bool:
    y, z = torch.as_tensor(y), torch.as_tensor(z)
    return y.shape == z.shape and bool((y - z).abs().max() <= rel * y.abs().max().clamp_min(1e-6))


@pytest.fixture(scope="module")
def corpus():
    out = {}
    for name in CORPUS:
        model, x = build(name)
        with torch.no_grad():
            out[name] = (x, model(x), export(model, x))
    return out


@pytest.mark.parametrize("isa", available_isas())
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_engine_matches_pytorch_eval(corpus, name, isa):
    x, y, blob = corpus[name]
    with use_isa(isa):
        engine = onebit.Engine(blob)
        z = engine(x)
    assert isinstance(z, torch.Tensor) and close(y, z)


@pytest.mark.parametrize("isa", available_isas())
def test_weights_packed_at_load_and_a_lower_isa_after_load(corpus, isa):
    # Loaded under `isa`: bconv2d weights are packed for its bgemm when that one repacks B per call
    # (AVX2 ntab, AVX-512 nvec), never for the portable one. Run under every ISA at or below it: a
    # kernel that is not the one the weights were packed for reads them unpacked; same results.
    x, y, blob = corpus["panel_edges"]
    with use_isa(isa):
        engine = onebit.Engine(blob, num_threads=2)
    assert (engine.packed_weight_bytes > 0) == (isa != "portable")
    results = []
    for lower in available_isas()[: available_isas().index(isa) + 1]:
        with use_isa(lower):
            results.append(engine(x))
    assert close(y, results[0])
    for z in results[1:]:
        torch.testing.assert_close(z, results[0], rtol=0, atol=0)


def test_prepacking_can_be_turned_off(corpus, monkeypatch):
    x, _, blob = corpus["panel_edges"]
    packed = onebit.Engine(blob)
    monkeypatch.setenv("ONEBIT_ENGINE_PREPACK", "0")
    plain = onebit.Engine(blob)
    assert plain.packed_weight_bytes == 0
    torch.testing.assert_close(plain(x), packed(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["bireal", "groups", "maxpool_bits", "reactnet"])  # reactnet: concat
def test_threads_batches_and_numpy(corpus, name):
    x, y, blob = corpus[name]
    one = onebit.Engine(blob)(x.numpy())
    assert isinstance(one, np.ndarray) and close(y, one)
    two = onebit.Engine(blob, num_threads=2)(x.numpy())
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(onebit.Engine(blob)(x[1:2].numpy()), one[1:2])


@pytest.mark.parametrize("isa", available_isas())
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_epilogue_fusion_is_bit_identical(corpus, name, isa, monkeypatch):
    """Per-channel ops fused into their producer's epilogue (load time) == the same ops run one by one."""
    x, _, blob = corpus[name]
    with use_isa(isa):
        fused = onebit.Engine(blob, num_threads=2)
        monkeypatch.setenv("ONEBIT_ENGINE_FUSE", "0")
        plain = onebit.Engine(blob, num_threads=2)
        monkeypatch.delenv("ONEBIT_ENGINE_FUSE")
        np.testing.assert_array_equal(fused(x.numpy()).view(np.uint32), plain(x.numpy()).view(np.uint32))
        prof = fused.profile(x[:1])
    assert [(k, n) for k, n, _ in prof] == [(op["op"], op["name"]) for op in fused.ops]  # graph order kept
    assert len(prof) == len(plain.profile(x[:1]))


@pytest.mark.parametrize("name", ["bireal", "reactnet", "si_bnn"])
def test_each_fusion_step_is_bit_identical(corpus, name, monkeypatch):
    """ONEBIT_ENGINE_FUSE selects fusion steps (to measure each); every selection gives the same bits."""
    x, _, blob = corpus[name]
    outs = []
    for value in ["1", "0", "stages", "stages,one_pass", "stages,one_pass,from_acc", "from_acc", "pool,stages"]:
        monkeypatch.setenv("ONEBIT_ENGINE_FUSE", value)
        outs.append(onebit.Engine(blob, num_threads=2)(x.numpy()).view(np.uint32))
        np.testing.assert_array_equal(outs[-1], outs[0], err_msg=value)
    monkeypatch.setenv("ONEBIT_ENGINE_FUSE", "stages,everything")
    with pytest.raises(RuntimeError, match="comma list of stages, pool, one_pass, from_acc"):
        onebit.Engine(blob)


def test_epilogue_fusion_happens(corpus):
    """ReActNet blocks: the bconv2d's add + RPReLU run fused (they report 0 s; their producer the time)."""
    x, _, blob = corpus["reactnet"]
    prof = onebit.Engine(blob).profile(x[:1])
    fused = [(k, s) for k, _, s in prof if k in ("add", "rprelu")]
    assert fused and any(s == 0.0 for _, s in fused)


def test_concurrent_calls_share_one_engine(corpus):
    x, y, blob = corpus["reactnet"]
    engine = onebit.Engine(blob)
    results, errors = [None] * 4, []

    def work(i):
        try:
            for _ in range(3):
                results[i] = engine(x)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for r in results:
        assert torch.equal(r, results[0]) and close(y, r)


def test_engine_from_path(tmp_path, corpus):
    x, y, blob = corpus["binary_linear"]
    (tmp_path / "m.onebit").write_bytes(blob)
    engine = onebit.Engine(str(tmp_path / "m.onebit"))
    assert engine.input_shape == (3, 8, 8) and engine.output_shape == (10,)
    assert close(y, engine(x)) and "Engine(" in repr(engine)


def test_bad_inputs_are_clear(corpus):
    x, _, blob = corpus["plain_zero_pad"]
    engine = onebit.Engine(blob)
    with pytest.raises(ValueError, match=r"shape \(N, 3, 12, 12\)"):
        engine(x[:, :2])
    with pytest.raises(TypeError, match="float32"):
        engine(x.double())
    with pytest.raises(TypeError, match="float32"):
        engine(x.numpy().astype(np.float64))
    with pytest.raises(TypeError, match="numpy array or a torch tensor"):
        engine(x.tolist())
    with pytest.raises(ValueError, match="num_threads"):
        onebit.Engine(blob, num_threads=0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_inputs_are_refused(corpus, bad):
    # ste_sign(nan) = -1 in PyTorch but the packers give NaN bit 0 = +1: refuse rather than differ silently
    x, _, blob = corpus["plain_zero_pad"]
    engine = onebit.Engine(blob)
    x = x.clone()
    x[1, 2, 3, 4] = bad
    with pytest.raises(ValueError, match=r"not finite \(NaN or Inf at sample 1, flat index 328\)"):
        engine(x)
    with pytest.raises(ValueError, match="not finite"):
        engine(x.numpy())
    with pytest.raises(ValueError, match="not finite"):
        engine.profile(x)
    np.testing.assert_array_equal(engine(x[:1]), engine(x[:1].numpy()))  # the finite sample still runs


def test_empty_batch_gives_an_empty_output(corpus):
    x, y, blob = corpus["binary_linear"]
    engine = onebit.Engine(blob)
    out = engine(x[:0])
    assert isinstance(out, torch.Tensor) and out.shape == (0, *engine.output_shape) and out.dtype == torch.float32
    out = engine(np.empty((0, *engine.input_shape), np.float32))
    assert isinstance(out, np.ndarray) and out.shape == (0, *engine.output_shape)
    assert close(y, engine(x))  # and the engine is still fine afterwards
