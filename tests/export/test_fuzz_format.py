"""The .onebit reader under fuzzing: a short seeded run, the harness itself, and one regression test
per bug the fuzzer found (each used to escape as a non-ModelFileError, or allocate unboundedly)."""

import json
import os
import struct
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from onebit.export import ModelFile, ModelFileError, read_model, write_model
from onebit.export.fuzz import (
    METHOD_MODELS,
    MUTATIONS,
    FuzzFailure,
    Seed,
    builtin_seeds,
    check,
    error_kind,
    export_seeds,
    load_seed_files,
    make_case,
    run,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = ModelFile(graph={"ops": []}, tensors={"w": np.arange(6, dtype=np.uint64).reshape(3, 2),
                                                "s": np.ones(5, dtype=np.float32)})


def with_header_text(text: bytes, blobs: bytes = b"") -> bytes:
    """A file whose JSON header is exactly ``text`` (space-padded to the alignment)."""
    text += b" " * (-(24 + len(text)) % 64)
    return struct.pack("<8sIIQ", b"ONEBIT\x00\x01", 1, 0, len(text)) + text + blobs


def rejected(data: bytes, match: str) -> None:
    with pytest.raises(ModelFileError, match=match):
        read_model(data)


def test_short_fuzz_run_finds_no_contract_failure():
    seeds = builtin_seeds() + export_seeds()
    report = run(seeds, cases=3000, seed=20240601, memory_every=10)
    assert report.failures == [], report.summary()
    assert report.cases == 3000 and report.memory_checked == 300
    assert report.outcomes["ok"] > 300  # a share of mutants stays valid (blob bytes, trailing data)
    assert len(report.outcomes) > 12  # and the rest reach many different checks
    assert set(report.mutations) == set(MUTATIONS)


def test_cases_are_reproducible_and_seeds_valid():
    seeds = builtin_seeds()
    assert make_case(seeds, 3, 77) == make_case(seeds, 3, 77)
    assert make_case(seeds, 3, 77) != make_case(seeds, 3, 78)
    for seed in seeds:
        assert check(seed.data) == "ok"


def test_seed_files_from_disk(tmp_path):
    path = tmp_path / "m.onebit"
    path.write_bytes(write_model(SAMPLE))
    (seed,) = load_seed_files([str(path)])
    assert seed.spans and seed.header["tensors"].keys() == {"w", "s"}
    with pytest.raises(ModelFileError):
        Seed("bad", b"garbage")


def test_the_oracle_flags_contract_breaks(monkeypatch):
    import onebit.export.fuzz as fuzz

    monkeypatch.setattr(fuzz, "read_model", lambda data: 1 // 0)
    with pytest.raises(FuzzFailure, match="ZeroDivisionError"):
        check(b"x")
    monkeypatch.setattr(fuzz, "read_model", lambda data: ModelFile(graph=None, tensors={"t": np.zeros(64)}))
    with pytest.raises(FuzzFailure, match="dtype float64"):
        check(b"x")
    monkeypatch.setattr(fuzz, "read_model", lambda data: ModelFile(graph=None, tensors={"t": np.zeros(8, np.uint8)}))
    with pytest.raises(FuzzFailure, match="8 tensor bytes out of a 1-byte file"):
        check(b"x")


def test_the_oracle_catches_a_hang(monkeypatch):
    import time

    import onebit.export.fuzz as fuzz

    monkeypatch.setattr(fuzz, "read_model", lambda data: time.sleep(5))
    with pytest.raises(FuzzFailure, match="hang"):
        check(b"x", time_limit=0.2)


def test_error_kinds():
    assert error_kind("invalid .onebit file: tensors 'a' and 'b' overlap") == "overlap"
    assert error_kind("invalid .onebit file: reserved field is 2, must be 0 in format version 1") == "reserved field"


# --------------------------------------------------------------------------- regressions found by fuzzing

def test_non_string_dtype_is_a_model_file_error():
    # was TypeError: unhashable type: 'list' (dtype looked up in a dict)
    for dtype in ([], {}, ["float32"]):
        text = json.dumps({"graph": 0, "metadata": {}, "tensors": {
            "t": {"dtype": dtype, "shape": [1], "offset": 0, "nbytes": 4}}}).encode()
        rejected(with_header_text(text, bytes(64)), "unknown dtype")


def test_huge_integer_literal_is_a_model_file_error():
    # was ValueError: Exceeds the limit (4300 digits) for integer string conversion
    rejected(with_header_text(b'{"graph":' + b"1" * 5000 + b',"metadata":{},"tensors":{}}'), "not valid JSON")
    rejected(with_header_text(b'{"graph":-' + b"9" * 21 + b',"metadata":{},"tensors":{}}'), "at most 20 digits")
    assert read_model(with_header_text(b'{"graph":[18446744073709551615,-9223372036854775808],'
                                       b'"metadata":{},"tensors":{}}')).graph == [2**64 - 1, -2**63]


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"[-1e400]"])
def test_non_finite_numbers_are_refused(literal):
    # were accepted, giving a graph that write_model (allow_nan=False) could not write back
    rejected(with_header_text(b'{"graph":' + literal + b',"metadata":{},"tensors":{}}'), "not valid JSON")


def test_too_many_dimensions_is_a_model_file_error():
    # was ValueError: maximum supported dimension for an ndarray is currently 64, found 1001
    for ndim in (33, 65, 1001):
        text = json.dumps({"graph": 0, "metadata": {}, "tensors": {
            "t": {"dtype": "uint8", "shape": [1] * ndim, "offset": 0, "nbytes": 1}}}).encode()
        rejected(with_header_text(text, bytes(64)), "dimensions, at most 32")
    with pytest.raises(ValueError, match="at most 32"):
        write_model(ModelFile(graph=0, tensors={"t": np.zeros([1] * 33, dtype=np.uint8)}))


def test_empty_tensor_with_overflowing_shape_is_a_model_file_error():
    # numpy raises ValueError ("array is too big") even for 0 elements
    text = json.dumps({"graph": 0, "metadata": {}, "tensors": {
        "t": {"dtype": "float32", "shape": [0, 2**62, 2**62], "offset": 0, "nbytes": 0}}}).encode()
    rejected(with_header_text(text), "too large")


def test_duplicate_keys_are_refused():
    # were silently resolved to the last one: two readers could disagree on which tensor "w" is
    entry = b'{"dtype":"uint8","shape":[1],"offset":0,"nbytes":1}'
    rejected(with_header_text(b'{"graph":0,"metadata":{},"tensors":{"w":' + entry + b',"w":' + entry + b"}}",
                              bytes(64)), "duplicate key 'w'")
    rejected(with_header_text(b'{"graph":0,"graph":1,"metadata":{},"tensors":{}}'), "duplicate key 'graph'")


def test_many_entries_on_one_blob_fail_before_allocating():
    # each entry used to be copied before the overlap check: N entries x one big blob bytes allocated
    blob = bytes(1 << 20)
    entry = {"dtype": "uint8", "shape": [len(blob)], "offset": 0, "nbytes": len(blob)}
    text = json.dumps({"graph": 0, "metadata": {}, "tensors": {f"t{i}": entry for i in range(200)}}).encode()
    tracemalloc.start()
    try:
        rejected(with_header_text(text, blob), "overlap")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * len(blob)  # was ~200 MiB


def test_nonzero_reserved_field_is_refused():
    data = bytearray(write_model(SAMPLE))
    struct.pack_into("<I", data, 8, 1)   # version 1: the field is reserved and must be 0
    struct.pack_into("<I", data, 12, 1)
    rejected(bytes(data), "reserved field is 1")
    struct.pack_into("<I", data, 8, 2)   # version 2: it is the checksum
    rejected(bytes(data), "checksum mismatch")


def test_writer_refuses_what_the_reader_would():
    with pytest.raises(ValueError, match="cannot be stored"):
        write_model(ModelFile(graph={"n": 10**30}))
    with pytest.raises(ValueError):
        write_model(ModelFile(graph={"x": float("nan")}))


def test_fuzz_script_smoke(tmp_path):
    path = tmp_path / "seed.onebit"
    path.write_bytes(write_model(SAMPLE))
    out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "fuzz_model_files.py"), "--cases", "300",
                          "--seed", "5", "--no-export", "--seed-file", str(path), "--crash-dir", str(tmp_path / "crashes")],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "cases run: 300" in out.stdout and "crashes (contract failures): 0" in out.stdout
    assert str(path) in out.stdout.splitlines()[0]


@pytest.mark.slow
def test_engine_load_fuzz(tmp_path):
    # in a subprocess: a native crash in the engine fails this test instead of killing pytest
    out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "fuzz_model_files.py"), "--cases", "20000",
                          "--seed", "11", "--engine", "--memory-every", "0", "--crash-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "crashes (contract failures): 0" in out.stdout and "engine runs" in out.stdout


# --------------------------------------------------------------------------- the engine's load path
# onebit.Engine(bytes) must run a file or raise ModelFileError. Before the fixes, malformed graphs escaped
# as TypeError (unhashable list/dict names, nanobind's "incompatible function arguments" for a non-string
# op name or an int attribute out of int64), KeyError (an op without "attrs"/"tensors") and
# IndexError: map::at (hardtanh's min/max written as JSON integers).

@pytest.fixture(scope="module")
def exported():
    skipped = []
    seeds = {seed.name: seed for seed in export_seeds(zoo=True, methods=True, skipped=skipped)}
    return seeds | {"skipped": skipped}


def engine_of(graph: dict, seed: Seed):
    from onebit import Engine

    model = read_model(seed.data)
    return Engine(write_model(ModelFile(graph=graph, tensors=model.tensors, metadata=model.metadata)))


def test_method_models_export_and_run(exported):
    # a converter or zoo change that stops one of them exporting would silently drop its ops from the fuzzer
    assert exported["skipped"] == []
    for key, *_ in METHOD_MODELS:
        assert check(exported[f"export:method:{key}"].data, engine=True) == "engine runs", key


def test_export_seeds_hold_every_engine_op(exported):
    # the graph_leaf mutations reach an op's validation and C++ code only through a seed that contains it
    from onebit.export.graph import OPS

    kinds = {op["op"] for name, seed in exported.items() if name != "skipped" for op in read_model(seed.data).graph["ops"]}
    assert set(OPS) - kinds == set(), "add a model with these ops to onebit.export.fuzz.METHOD_MODELS"


def test_short_engine_fuzz_run_finds_no_contract_failure(exported):
    seeds = [seed for name, seed in exported.items() if name != "skipped"]
    report = run(builtin_seeds() + seeds, cases=2000, seed=12, engine=True)
    assert report.failures == [], report.summary()
    outcomes = {k: n for k, n in report.outcomes.items() if k.startswith("engine")}
    assert outcomes.get("engine runs", 0) > 50  # the engine ran mutated files ...
    assert sum(outcomes.values()) - outcomes["engine runs"] > 200  # ... and rejected many with ModelFileError


_BAD = [None, True, 1.5, 2**63, -(2**63) - 1, "x", [[1]], {"a": 1}, [1, "a"]]
_DELETE = object()


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, path + (i,))


@pytest.mark.parametrize("name", ["export:small_cnn", "export:method:cnn28-sbnn"])
def test_every_graph_field_wrongly_typed_is_a_model_file_error(exported, name):
    # systematic, not random: each field of an exported graph replaced by each bad value (or deleted);
    # cnn28-sbnn: the method ops sbconv2d, sblinear, adaptive_pool
    from onebit import Engine

    seed = exported[name]
    model = read_model(seed.data)
    escaped, cases = [], 0
    for path in list(_paths(model.graph))[1:]:
        for bad in _BAD + [_DELETE]:
            graph = json.loads(json.dumps(model.graph))
            parent = graph
            for key in path[:-1]:
                parent = parent[key]
            if bad is _DELETE:
                del parent[path[-1]]
            else:
                parent[path[-1]] = bad
            cases += 1
            try:
                engine = Engine(ModelFile(graph=graph, tensors=model.tensors))
                engine(np.zeros((1, *engine.input_shape), np.float32))
            except ModelFileError:
                pass
            except Exception as exc:  # noqa: BLE001
                escaped.append(f"{path} = {bad!r}: {type(exc).__name__}: {exc}"[:300])
    assert cases > 1000 and escaped == [], escaped[:10]


def _hardtanh(graph: dict) -> dict:
    return next(op for op in graph["ops"] if op["op"] == "hardtanh")


def test_integer_real_attribute_runs(exported):
    # hardtanh min/max written as JSON integers: was IndexError: map::at from the C++ op
    seed = exported["export:small_cnn"]
    graph = read_model(seed.data).graph
    engine = engine_of(graph, seed)
    x = np.random.default_rng(0).standard_normal((2, *engine.input_shape)).astype(np.float32) * 3
    want = engine(x)
    attrs = _hardtanh(graph)["attrs"]
    assert isinstance(attrs["min"], float)
    attrs["min"], attrs["max"] = int(attrs["min"]), int(attrs["max"])
    np.testing.assert_array_equal(engine_of(graph, seed)(x), want)
    attrs["min"], attrs["max"] = -(2**64 - 1), 2**64 - 1  # beyond int64 (was nanobind TypeError): a real
    assert engine_of(graph, seed)(x).shape == want.shape
    for bad in (1e39, -1e39, True):  # beyond float32, or not a number
        _hardtanh(graph)["attrs"]["min"] = bad
        with pytest.raises(ModelFileError, match="bad attribute min"):
            engine_of(graph, seed)


@pytest.mark.parametrize("field,bad,match", [
    ("name", 64, "name must be a string"),            # was nanobind TypeError
    ("name", [[1]], "name must be a string"),
    ("inputs", [["x"]], "value names"),               # was TypeError: unhashable type: 'list'
    ("outputs", [{"a": 1}], "value names"),
    ("op", ["conv2d"], "unknown op"),                 # was TypeError: unhashable type
    ("tensors", {"weight": ["w"]}, "role -> tensor name"),
])
def test_wrongly_typed_op_fields(exported, field, bad, match):
    seed = exported["export:mlp"]
    graph = read_model(seed.data).graph
    graph["ops"][0][field] = bad
    with pytest.raises(ModelFileError, match=match):
        engine_of(graph, seed)


def test_ops_without_attrs_or_tensors_keys_run(exported):
    # "attrs" and "tensors" may be left out when empty (validate's reading): was KeyError in onebit.Engine
    seed = exported["export:mlp"]
    graph = read_model(seed.data).graph
    x = np.random.default_rng(0).standard_normal((2, *graph["values"][graph["inputs"][0]]["shape"])).astype(np.float32)
    want = engine_of(graph, seed)(x)
    flatten = next(op for op in graph["ops"] if op["op"] == "flatten")
    del flatten["attrs"], flatten["tensors"]
    np.testing.assert_array_equal(engine_of(graph, seed)(x), want)


def test_the_binding_reports_inconsistent_records_as_value_errors(exported):
    # what validation should never let through still fails cleanly in C++ (no map::at / out_of_range)
    from onebit import _C
    from onebit.engine import _op_record

    graph = read_model(exported["export:small_cnn"].data).graph
    model = read_model(exported["export:small_cnn"].data)
    index = {n: i for i, n in enumerate(graph["values"])}
    values = [(0 if v["kind"] == "float" else 1, v["shape"], 0 if v.get("domain", "pm1") == "pm1" else 1)
              for v in graph["values"].values()]
    ops = [_op_record(op, index, model.tensors) for op in graph["ops"]]
    i = next(k for k, op in enumerate(graph["ops"]) if op["op"] == "hardtanh")
    ops[i][5].clear()  # the real attributes: min, max
    with pytest.raises(ValueError, match="missing real attribute min"):
        _C.Engine(values, ops, index[graph["inputs"][0]], index[graph["outputs"][0]], 1)
    with pytest.raises(ModelFileError, match="invalid .onebit graph: .*missing real attribute"):
        import onebit.engine as eng

        class Shim:  # Engine's own wrapping of the binding's ValueError
            Engine = staticmethod(lambda *a: _C.Engine(values, ops, *a[2:]))

        real, eng._C = eng._C, Shim
        try:
            eng.Engine(exported["export:small_cnn"].data)
        finally:
            eng._C = real
