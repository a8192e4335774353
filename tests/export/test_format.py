"""The .onebit container: round trip, alignment, and a clear error for every kind of damage."""

import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onebit.export import ModelFile, ModelFileError, read_model, write_model
from onebit.export.format import ALIGN, MAGIC, seal


def sample():
    rng = np.random.default_rng(0)
    return ModelFile(
        graph={"ops": [{"op": "bconv2d", "inputs": ["x"], "attrs": {"stride": [2, 2]}}]},
        tensors={"w": rng.integers(0, 2**63, size=(3, 2), dtype=np.uint64),
                 "scale": rng.standard_normal(5).astype(np.float32),
                 "empty": np.zeros((0, 4), dtype=np.int32), "bytes": np.arange(7, dtype=np.uint8)},
        metadata={"producer": "onebit-test"},
    )


def test_round_trip_and_alignment():
    m = sample()
    blob = write_model(m)
    back = read_model(blob)
    assert back.graph == m.graph and back.metadata == m.metadata
    assert back.tensors.keys() == m.tensors.keys()
    for k in m.tensors:
        assert back.tensors[k].dtype == m.tensors[k].dtype and np.array_equal(back.tensors[k], m.tensors[k])
    hlen = struct.unpack_from("<Q", blob, 16)[0]
    assert (24 + hlen) % ALIGN == 0
    header = json.loads(blob[24:24 + hlen])
    assert all(e["offset"] % ALIGN == 0 for e in header["tensors"].values())


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["float32", "int32", "uint64", "uint8"]),
                          st.lists(st.integers(0, 5), max_size=3)), max_size=5))
def test_round_trip_property(specs):
    tensors = {f"t{i}": np.ones(shape, dtype=dtype) for i, (dtype, shape) in enumerate(specs)}
    back = read_model(write_model(ModelFile(graph=[], tensors=tensors)))
    assert all(np.array_equal(back.tensors[k], v) and back.tensors[k].shape == v.shape for k, v in tensors.items())


def rewrite_header(blob, edit):
    hlen = struct.unpack_from("<Q", blob, 16)[0]
    header = json.loads(blob[24:24 + hlen])
    edit(header)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (hlen - len(text))
    assert len(text) == hlen
    return blob[:24] + text + blob[24 + hlen:]


def set_entry(name, key, value):
    def edit(h):
        h["tensors"][name][key] = value
    return edit


DAMAGE = [
    (lambda b: b[:10], "shorter than"),
    (lambda b: b"NOTONEBT" + b[8:], "bad magic"),
    (lambda b: b[:8] + struct.pack("<I", 7) + b[12:], "version 7"),
    (lambda b: b[:16] + struct.pack("<Q", 1 << 40) + b[24:], "past the end"),
    (lambda b: b[:16] + struct.pack("<Q", 8) + b[24:], "aligned"),
    (lambda b: b[:24] + b"{not json" + b[33:], "not valid JSON"),
    (lambda b: b[: len(b) - 64], "past the"),
    (lambda b: rewrite_header(b, set_entry("w", "dtype", "float16")), "unknown dtype"),
    (lambda b: rewrite_header(b, set_entry("w", "shape", [3, -2])), "shape"),
    (lambda b: rewrite_header(b, set_entry("w", "offset", 3)), "multiple of"),
    (lambda b: rewrite_header(b, set_entry("w", "nbytes", 8)), "nbytes"),
    (lambda b: rewrite_header(b, set_entry("scale", "offset", 0)), "overlap"),
    (lambda b: rewrite_header(b, set_entry("w", "offset", 1 << 30)), "run past"),
    (lambda b: rewrite_header(b, lambda h: h.pop("graph")), "exactly the keys"),
    (lambda b: rewrite_header(b, lambda h: h["metadata"].update(x=1)), "metadata"),
]


@pytest.mark.parametrize("damage,match", DAMAGE)
def test_damaged_files_raise_clear_errors(damage, match):
    blob = damage(write_model(sample()))
    # Resealed (checksum recomputed) to reach the structural check; as written, the checksum refuses it.
    with pytest.raises(ModelFileError, match=match):
        read_model(seal(blob))
    with pytest.raises(ModelFileError):
        read_model(blob)


def test_checksum_catches_damage_no_structural_check_sees():
    blob = bytearray(write_model(sample()))
    assert struct.unpack_from("<I", blob, 8)[0] == 2 and read_model(bytes(blob))
    blob[-3] ^= 0x10                                        # one bit of the last weight blob
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        read_model(bytes(blob))
    assert read_model(seal(blob)).tensors["w"].size        # the same bytes, resealed: structurally fine


def test_version_1_files_are_still_read():
    good = write_model(sample())
    v1 = good[:8] + struct.pack("<II", 1, 0) + good[16:]   # version 1: no checksum, field 0
    assert read_model(v1).graph == read_model(good).graph
    with pytest.raises(ModelFileError, match="reserved field"):
        read_model(good[:8] + struct.pack("<II", 1, 5) + good[16:])


def test_magic_constant_and_writer_errors():
    assert MAGIC[:6] == b"ONEBIT"
    with pytest.raises(ValueError, match="not storable"):
        write_model(ModelFile(graph={}, tensors={"x": np.zeros(2, dtype=np.float16)}))
    with pytest.raises(ValueError, match="metadata"):
        write_model(ModelFile(graph={}, metadata={"a": 1}))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 2000))
def test_random_corruption_never_crashes(noise, at):
    blob = bytearray(write_model(sample()))
    at = at % len(blob)
    blob[at:at + len(noise)] = noise
    try:
        read_model(bytes(blob))
    except ModelFileError:
        pass
