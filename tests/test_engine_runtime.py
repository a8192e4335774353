"""Engine runtime: per-op profile, the persistent thread pool under concurrent calls, the float GEMM
backend, and the export / run / bench subcommands of the CLI."""

from __future__ import annotations

import os

import threading

import numpy as np
import pytest
import torch

import onebit
from onebit import _C
from onebit.cli import main
from onebit.export import export
from export.toy_models import build


@pytest.fixture(scope="module")
def bireal():
    model, x = build("bireal")
    with torch.no_grad():
        return x, model(x), export(model, x)


def test_profile_names_every_op(bireal):
    x, y, blob = bireal
    engine = onebit.Engine(blob, num_threads=2)
    prof = engine.profile(x)
    assert [(t, n) for t, n, _ in prof] == [(op["op"], op["name"]) for op in engine.ops]
    assert all(s >= 0 for *_, s in prof) and {"conv2d", "bconv2d", "linear"} <= {t for t, *_ in prof}


def test_concurrent_calls_on_a_threaded_engine(bireal):
    """Callers that find the pool busy run their regions inline: same results, no deadlock."""
    x, _, blob = bireal
    engine = onebit.Engine(blob, num_threads=2)
    want = engine(x)
    results, errors = [], []

    def work():
        try:
            for _ in range(5):
                results.append(engine(x))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 15
    assert all(torch.equal(r, want) for r in results)


@pytest.mark.parametrize("threads", [1, 3])
def test_results_do_not_depend_on_threads(bireal, threads):
    x, _, blob = bireal
    np.testing.assert_array_equal(onebit.Engine(blob, num_threads=threads)(x.numpy()), onebit.Engine(blob)(x.numpy()))


def test_float_gemm_backend_is_named():
    name = _C.float_gemm_backend()
    assert name.startswith("openblas") or name == "blocked-c++"


def test_cli_export_run_bench(tmp_path, capsys):
    path = str(tmp_path / "m.onebit")
    assert main(["export", "resnet20", "--method", "bireal", "-o", path]) == 0
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", path, "--input", str(tmp_path / "x.npy"), "--threads", "2",
                 "--output", str(tmp_path / "y.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), onebit.Engine(path)(x))
    assert main(["bench", path, "--threads", "1", "2", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "threads 2: engine" in out and "torch FP32 resnet20" in out and "speed-up" in out
    assert f"kernels: bitpack {onebit.kernels.dispatched_variant('bitpack')}" in out and "weights packed at load" in out


def test_cli_bench_profile(tmp_path, capsys):
    path = str(tmp_path / "m.onebit")
    assert main(["export", "resnet20", "--method", "bireal", "--quantize", "int8", "-o", path]) == 0
    assert main(["bench", path, "--threads", "1", "--repeats", "2", "--profile", "3"]) == 0
    out = capsys.readouterr().out
    assert "profile:" in out and "by type:" in out and "bconv2d" in out and "qconv2d" in out
    assert len([line for line in out.splitlines() if line.startswith("    #")]) == 3


def test_cli_export_quantize_int8(tmp_path):
    float_path, int8_path = str(tmp_path / "f.onebit"), str(tmp_path / "q.onebit")
    assert main(["export", "resnet20", "--method", "bireal", "-o", float_path]) == 0
    assert main(["export", "resnet20", "--method", "bireal", "--quantize", "int8", "-o", int8_path]) == 0
    ops = [op["op"] for op in onebit.export.load(int8_path).graph["ops"]]
    assert "qconv2d" in ops and "qlinear" in ops and "conv2d" not in ops and "linear" not in ops
    assert os.path.getsize(int8_path) < os.path.getsize(float_path)
    with pytest.raises(SystemExit):
        main(["export", "resnet20", "--quantize", "int4", "-o", int8_path])


def test_cli_export_rejects_unknown(tmp_path):
    with pytest.raises(SystemExit):
        main(["export", "no_such_model", "-o", str(tmp_path / "m.onebit")])
