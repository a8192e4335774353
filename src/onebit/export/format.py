"""The ``.onebit`` model file container (DESIGN.md section 4): never pickled, validated before use.

Layout (all integers little-endian)::

    offset  size  field
    0       8     magic  b"ONEBIT\\x00\\x01"
    8       4     format version (uint32), currently 2
    12      4     CRC-32 (zlib) of every byte after the preamble (header and data); version 1: 0
    16      8     header length H (uint64): bytes of the JSON header that follows
    24      H     JSON header, UTF-8, padded with spaces so the data section starts 64-byte aligned
    24+H    ...   data section: tensor blobs, each starting at a multiple of 64 bytes

The JSON header is ``{"graph": <any JSON>, "metadata": {str: str}, "tensors": {name: entry}}`` with
``entry = {"dtype": "float32"|"int32"|"uint64"|"uint8"|"int8", "shape": [int, ...], "offset": int, "nbytes": int}``;
offsets are relative to the data section. The reader checks every field, offset, size and overlap
before it hands out a single array, and raises :class:`ModelFileError` naming what is wrong.
Version 2 adds the checksum, so damage anywhere (a flipped bit in a weight blob, which no structural
check can see) is an error instead of a silently different model; version 1 files (field 0, no
checksum) are still read.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["FORMAT_VERSION", "MAGIC", "ModelFile", "ModelFileError", "read_model", "write_model"]

MAGIC = b"ONEBIT\x00\x01"
FORMAT_VERSION = 2
_READ_VERSIONS = (1, 2)
ALIGN = 64
_PREAMBLE = struct.Struct("<8sIIQ")  # magic, version, CRC-32 (version 1: reserved, 0), header length
_DTYPES = {"float32": np.float32, "int32": np.int32, "uint64": np.uint64, "uint8": np.uint8, "int8": np.int8}
_MAX_HEADER = 64 << 20  # a 64 MiB JSON header is already absurd; refuse before allocating
_MAX_NDIM = 32  # numpy's limit is 64; no model tensor comes close, and math.prod stays cheap
_MAX_INT_DIGITS = 20  # 2**64 - 1 has 20 digits: longer JSON integers are refused before int() parses them
_MAX_ARRAY_BYTES = 2**63  # numpy cannot describe an array (even an empty one) this large


class ModelFileError(ValueError):
    """A ``.onebit`` file is malformed, truncated or of an unsupported version."""


@dataclass
class ModelFile:
    """A parsed model file: the graph (JSON), string metadata and named numpy arrays."""

    graph: Any
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def write_model(model: ModelFile) -> bytes:
    """Serialize ``model`` to bytes (see the module docstring for the layout)."""
    entries, blobs, offset = {}, [], 0
    for name, array in model.tensors.items():
        arr = np.asarray(array)
        arr = arr if arr.flags.c_contiguous else arr.copy(order="C")  # (ascontiguousarray makes 0-d 1-d)
        dtype = next((k for k, v in _DTYPES.items() if arr.dtype == v), None)
        if dtype is None:
            raise ValueError(f"tensor {name!r}: dtype {arr.dtype} is not storable; valid: {sorted(_DTYPES)}")
        if arr.ndim > _MAX_NDIM:
            raise ValueError(f"tensor {name!r}: {arr.ndim} dimensions, at most {_MAX_NDIM} are storable")
        entries[name] = {"dtype": dtype, "shape": list(arr.shape), "offset": offset, "nbytes": arr.nbytes}
        blobs.append((offset, arr.tobytes()))
        offset = _align(offset + arr.nbytes)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in model.metadata.items()):
        raise ValueError("metadata must map str to str")
    header = json.dumps({"graph": model.graph, "metadata": model.metadata, "tensors": entries},
                        separators=(",", ":"), allow_nan=False).encode()
    try:
        _loads(header)  # never write what read_model refuses (e.g. a 30-digit integer in the graph)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"the graph or metadata cannot be stored: {exc}") from None
    header += b" " * (_align(_PREAMBLE.size + len(header)) - _PREAMBLE.size - len(header))
    data = bytearray(offset)
    for start, raw in blobs:
        data[start:start + len(raw)] = raw
    body = header + bytes(data)
    return _PREAMBLE.pack(MAGIC, FORMAT_VERSION, zlib.crc32(body), len(header)) + body


def seal(buf: bytes | bytearray) -> bytes:
    """``buf`` with its version-2 checksum recomputed (a fuzzer's tool: to reach the checks behind it)."""
    out = bytearray(buf)
    if len(out) >= _PREAMBLE.size and struct.unpack_from("<I", out, 8)[0] == 2:
        struct.pack_into("<I", out, 12, zlib.crc32(memoryview(out)[_PREAMBLE.size:]))
    return bytes(out)


def _fail(msg: str) -> ModelFileError:
    return ModelFileError(f"invalid .onebit file: {msg}")


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise ValueError(f"integer with {len(text)} characters (at most {_MAX_INT_DIGITS} digits)")
    return int(text)


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _json_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")  # NaN, Infinity, -Infinity: the writer never emits them


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):  # two entries of one name: which one a reader takes is not defined
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"duplicate key {dup!r}"[:200])
    return obj


def _loads(text: bytes) -> Any:
    """Strict JSON: no NaN/Infinity, no out-of-range numbers, no duplicate keys, no 10^6-digit integers."""
    return json.loads(text.decode("utf-8"), parse_int=_json_int, parse_float=_json_float,
                      parse_constant=_json_constant, object_pairs_hook=_json_object)


def _parse_header(buf: bytes) -> tuple[dict, int]:
    if len(buf) < _PREAMBLE.size:
        raise _fail(f"{len(buf)} bytes is shorter than the {_PREAMBLE.size}-byte preamble (truncated?)")
    magic, version, reserved, hlen = _PREAMBLE.unpack_from(buf, 0)
    if magic != MAGIC:
        raise _fail(f"bad magic {magic!r} (expected {MAGIC!r}); this is not a onebit model")
    if version not in _READ_VERSIONS:
        raise _fail(f"format version {version} is not supported (this onebit reads versions {list(_READ_VERSIONS)})")
    if version == 1 and reserved != 0:
        raise _fail(f"reserved field is {reserved}, must be 0 in format version 1")
    if hlen > _MAX_HEADER or _PREAMBLE.size + hlen > len(buf):
        raise _fail(f"header length {hlen} runs past the end of the {len(buf)}-byte file (truncated?)")
    if (_PREAMBLE.size + hlen) % ALIGN:
        raise _fail(f"header length {hlen} does not leave the data section {ALIGN}-byte aligned")
    if version == 2 and zlib.crc32(memoryview(buf)[_PREAMBLE.size:]) != reserved:
        raise _fail(f"checksum mismatch: the file is damaged or truncated (CRC-32 of header and data "
                    f"{zlib.crc32(memoryview(buf)[_PREAMBLE.size:]):#010x}, the preamble says {reserved:#010x})")
    try:
        header = _loads(buf[_PREAMBLE.size:_PREAMBLE.size + hlen])
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _fail(f"header is not valid JSON: {exc}") from None
    if not isinstance(header, dict) or set(header) != {"graph", "metadata", "tensors"}:
        raise _fail("header must be an object with exactly the keys graph, metadata, tensors")
    return header, _PREAMBLE.size + hlen


def _check_entry(name: str, entry: Any, data_size: int) -> tuple[np.dtype, tuple[int, ...], int, int]:
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "offset", "nbytes"}:
        raise _fail(f"tensor {name!r}: entry must have exactly dtype, shape, offset, nbytes")
    dtype, shape, offset, nbytes = entry["dtype"], entry["shape"], entry["offset"], entry["nbytes"]
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise _fail(f"tensor {name!r}: unknown dtype {dtype!r}; valid: {sorted(_DTYPES)}")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise _fail(f"tensor {name!r}: shape must be a list of non-negative ints, got {shape!r}"[:300])
    if len(shape) > _MAX_NDIM:
        raise _fail(f"tensor {name!r}: shape has {len(shape)} dimensions, at most {_MAX_NDIM} are supported")
    if type(offset) is not int or type(nbytes) is not int or offset < 0 or offset % ALIGN:
        raise _fail(f"tensor {name!r}: offset must be a non-negative multiple of {ALIGN}, got {offset!r}")
    np_dtype = np.dtype(_DTYPES[dtype])
    if math.prod(d for d in shape if d) * np_dtype.itemsize >= _MAX_ARRAY_BYTES:
        raise _fail(f"tensor {name!r}: shape {shape} is too large for an array")
    if nbytes != math.prod(shape) * np_dtype.itemsize:
        raise _fail(f"tensor {name!r}: nbytes {nbytes} != {math.prod(shape)} elements x {np_dtype.itemsize} bytes")
    if offset + nbytes > data_size:
        raise _fail(f"tensor {name!r}: bytes [{offset}, {offset + nbytes}) run past the {data_size}-byte data section")
    return np_dtype, tuple(shape), offset, nbytes


def read_model(buf: bytes | bytearray | memoryview) -> ModelFile:
    """Parse and validate a ``.onebit`` file; arrays are copies, independent of ``buf``."""
    buf = bytes(buf)
    header, data_start = _parse_header(buf)
    metadata, entries = header["metadata"], header["tensors"]
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _fail("metadata must be an object of strings")
    if not isinstance(entries, dict):
        raise _fail("tensors must be an object")
    data_size = len(buf) - data_start
    checked = {name: _check_entry(name, entry, data_size) for name, entry in entries.items()}
    # No overlap, checked before any copy: the arrays then total at most the file's size.
    spans = sorted((offset, offset + nbytes, name) for name, (_, _, offset, nbytes) in checked.items())
    for (_, end, a), (start, _, b) in zip(spans, spans[1:]):
        if start < end:
            raise _fail(f"tensors {a!r} and {b!r} overlap")
    tensors = {}
    for name, (dtype, shape, offset, nbytes) in checked.items():
        raw = buf[data_start + offset:data_start + offset + nbytes]
        tensors[name] = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    return ModelFile(graph=header["graph"], tensors=tensors, metadata=metadata)
