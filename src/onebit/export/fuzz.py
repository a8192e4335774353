"""A seeded fuzzer for the ``.onebit`` reader: valid seed files, structure-aware mutations, an oracle.

The contract under test (DESIGN.md section 4): :func:`~onebit.export.format.read_model` on *any*
bytes either returns a consistent :class:`ModelFile` or raises :class:`ModelFileError`. Anything
else is a failure: another exception type, a result that does not survive a write/read round
trip, arrays that are not independent copies, more tensor bytes than the file holds, a case that
runs longer than ``time_limit`` seconds (a hang) or allocates far more than the file's size.

Case ``i`` of seed ``s`` is a pure function of ``(s, i)`` and the seed files, so any failure is
replayed with :func:`make_case`. ``scripts/fuzz_model_files.py`` (``make fuzz``) is the long run;
``tests/export/test_fuzz_format.py`` the short one.

    >>> from onebit.export.fuzz import builtin_seeds, run
    >>> report = run(builtin_seeds(), cases=100, seed=0)
    >>> report.failures
    []
"""

from __future__ import annotations

import importlib
import json
import random
import re
import signal
import struct
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .format import ALIGN, ModelFile, ModelFileError, read_model, seal, write_model

__all__ = ["FuzzFailure", "FuzzReport", "Seed", "builtin_seeds", "check", "error_kind", "export_seeds", "load_seed_files",
           "make_case", "run"]

_PREAMBLE = struct.Struct("<8sIIQ")
_FIELDS = ("dtype", "shape", "offset", "nbytes")
#: Values a JSON field should never be trusted to hold: wrong types, huge, negative, odd numbers.
INTERESTING = [None, True, False, 0, 1, -1, 63, 64, 65, -64, 2**31, 2**32, 2**53 + 1, 2**63, 2**64, -2**63,
               10**30, 1.0, 64.0, -0.0, 1e308, "64", "", "float32", "\u00e9", [], [64], [[1]], {}, {"a": 1},
               [-1], [2**40, 2**40], [2**62] * 4, [True, 2], [1.5], [1] * 40, [1] * 70]
_ODD_STRINGS = ["", "\x00", "w\x00x", "\u00e9t\u00e9", "\U0001F600", "\u202e", "\ud800", "a" * 300, "\ufeff"]
_BYTE_VALUES = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0x20, 0x22, 0x5C, 0x7B, 0x7D, 0x5B, 0x5D, 0x2C, 0x3A, 0x2D, 0x30]


class CaseTimeout(Exception):
    """Raised by the interval timer inside a case that ran past the time limit."""


@dataclass
class Seed:
    """A valid model file and its parsed layout (what the structure-aware mutations edit)."""

    name: str
    data: bytes
    header: dict = field(init=False)
    hlen: int = field(init=False)
    spans: list[tuple[int, int]] = field(init=False)  # absolute [start, end) of each blob

    def __post_init__(self) -> None:
        read_model(self.data)  # a seed must be valid
        self.hlen = _PREAMBLE.unpack_from(self.data, 0)[3]
        self.header = json.loads(self.data[24:24 + self.hlen])
        start = 24 + self.hlen
        self.spans = [(start + e["offset"], start + e["offset"] + e["nbytes"]) for e in self.header["tensors"].values()]

    @property
    def blobs(self) -> bytes:
        return self.data[24 + self.hlen:]


# --------------------------------------------------------------------------- seeds

def _seed_models() -> dict[str, ModelFile]:
    rng = np.random.default_rng(0)
    graph = {"ops": [{"op": f"bconv2d_{i}", "inputs": [f"x{i}"], "attrs": {"stride": [2, 2], "pad": 1.0 * i,
                                                                          "name": "\u00e9\u4e2d\U0001F600"}}
                     for i in range(20)], "version": 1}
    return {
        "empty": ModelFile(graph={}),
        "sample": ModelFile(
            graph={"ops": [{"op": "bconv2d", "inputs": ["x"], "attrs": {"stride": [2, 2]}}]},
            tensors={"w": rng.integers(0, 2**63, size=(3, 2), dtype=np.uint64),
                     "scale": rng.standard_normal(5).astype(np.float32),
                     "empty": np.zeros((0, 4), dtype=np.int32), "bytes": np.arange(7, dtype=np.uint8)},
            metadata={"producer": "onebit-test"}),
        "dtypes": ModelFile(graph=[1, 2.5, None, True, "s"], tensors={
            "f": np.full((), 1.5, dtype=np.float32), "i": np.arange(-8, 8, dtype=np.int32).reshape(4, 2, 2),
            "u": np.arange(64, dtype=np.uint64), "b": np.full((1,), 255, dtype=np.uint8),
            "s8": np.arange(-128, 128, 37, dtype=np.int8),
            "fz": np.zeros((2, 0, 3), dtype=np.float32)}),
        "graph_heavy": ModelFile(graph=graph, tensors={"\u00e9\U0001F600": np.ones((8, 8), dtype=np.float32)},
                                 metadata={"producer": "onebit", "note": "\u4e2d\u6587 \u202e\u0000"}),
        "many_small": ModelFile(graph=None, tensors={f"t{i:03d}": np.full((i % 5,), i, dtype=np.uint8)
                                                     for i in range(60)}),
        "big_blob": ModelFile(graph={"k": 1}, tensors={
            "w": rng.integers(0, 2**63, size=(64, 16), dtype=np.uint64),
            "s": rng.standard_normal((64,)).astype(np.float32)}),
    }


def builtin_seeds() -> list[Seed]:
    """Valid files written by :func:`write_model`: empty, every dtype, 0-d/empty tensors, a large
    graph with unicode, many tiny tensors and an 8 KiB blob."""
    return [Seed(name, write_model(model)) for name, model in _seed_models().items()]


def export_seeds(*, zoo: bool = False, methods: bool = False, skipped: list[str] | None = None) -> list[Seed]:
    """Files from ``onebit.export.export`` of small binarized models (and, with ``zoo``, of small
    ``onebit.models`` zoo models; with ``methods``, of tiny zoo models binarized with each method, so
    that the method ops ``sbconv2d``, ``dybitpack``, ``elastic_add``, ... are in the seeds), when the
    converter exists. Models it cannot export yet are left out, with the reason appended to ``skipped``."""
    export = getattr(importlib.import_module("onebit.export"), "export", None)
    if export is None:
        if skipped is not None:
            skipped.append("onebit.export.export does not exist")
        return []
    seeds = []
    models = {**_export_models(), **(_zoo_models() if zoo else {}), **(_method_models(skipped) if methods else {})}
    for name, (model, x) in models.items():
        try:
            out = export(model, x, quantize="int8") if name.endswith("-int8") else export(model, x)
        except Exception as exc:  # noqa: BLE001 - a converter gap is not the reader's problem
            if skipped is not None:
                skipped.append(f"{name}: {type(exc).__name__}: {str(exc)[:120]}")
            continue
        data = out if isinstance(out, (bytes, bytearray)) else write_model(out) if isinstance(out, ModelFile) else None
        if data is not None:
            seeds.append(Seed(f"export:{name}", bytes(data)))
    return seeds


def _export_models() -> dict[str, tuple[Any, Any]]:
    import torch

    from ..binarize import BinarizeConfig, binarize_
    from ..train.build import small_cnn

    torch.manual_seed(0)
    cnn = binarize_(small_cnn(num_classes=10, in_chans=1, width=8),
                    BinarizeConfig.from_dict({"input_quantizer": "ste_sign", "weight_quantizer": "ste_sign"}))
    mlp = binarize_(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 130), torch.nn.BatchNorm1d(130),
                                        torch.nn.Linear(130, 10)),
                    BinarizeConfig.from_dict({"input_quantizer": "ste_sign", "weight_quantizer": "ste_sign"}))
    return {"small_cnn": (cnn.eval(), torch.randn(2, 1, 8, 8)), "mlp": (mlp.eval(), torch.randn(2, 1, 8, 8))}


def _zoo_models() -> dict[str, tuple[Any, Any]]:
    """Small zoo models binarized with ``bnn`` (skipped when ``onebit.models`` is missing)."""
    import torch

    try:
        zoo = importlib.import_module("onebit.models")
    except ImportError:
        return {}
    out = {}
    for name, chans, size in (("cnn28", 1, 28), ("resnet20", 3, 32), ("vgg_small", 3, 32)):
        try:
            torch.manual_seed(0)
            out[f"zoo:{name}"] = (zoo.create(name, in_chans=chans, method="bnn").eval(), torch.randn(1, chans, size, size))
        except Exception:  # noqa: BLE001 - a zoo change must not break the fuzzer
            continue
    return out


#: (seed name, zoo model, method, input channels, input size, model kwargs): tiny models whose exports hold
#: every method op of ``onebit.export.graph.OPS`` at least once (tests/export/test_fuzz_format.py checks
#: that). A method given as a dict is ``(base method, its modifications)``.
METHOD_MODELS: list[tuple[str, str, Any, int, int, dict]] = [
    # 20x20: the last stage pools 5 -> 3 with non-uniform windows (adaptive_pool); SBNN's {alpha, 0}
    # weights (set below) give sbconv2d and sblinear
    ("cnn28-sbnn", "cnn28", "sbnn", 1, 20, {"width": 4}),
    # DySign with a tanh bound and mean+std statistics: channel_stats, tanh, dybitpack
    ("cnn28-dybnn-tanh", "cnn28", ("dybnn", {"input_quantizer": {"name": "dysign", "reduction": 4,
                                                                 "statistic": "mean_std", "bound": "tanh",
                                                                 "detach_input": False}}), 1, 12, {"width": 4}),
    ("resnet20-dybnn", "resnet20", "dybnn", 3, 8, {"width_mult": 0.25}),                # dyprelu
    ("resnet20-elastic-link", "resnet20", "elastic-link", 3, 8, {"width_mult": 0.25}),  # elastic_add
    ("resnet20-si-bnn", "resnet20", "si-bnn", 3, 8, {"width_mult": 0.25}),  # {0,1} inputs, negative scales
    ("resnet20-xnor", "resnet20", "xnor", 3, 8, {"width_mult": 0.25}),
    ("resnet20-prelu", "resnet20", ("reactnet", {"activation": "prelu"}), 3, 8, {"width_mult": 0.25}),
    ("reactnet_a", "reactnet_a", "reactnet", 3, 32, {"width_mult": 0.125}),  # rprelu, concat
    ("quicknet", "quicknet", "bnn", 3, 32, {"width_mult": 0.125}),           # blur pool (grouped conv2d)
    ("resnet20-int8", "resnet20", "bireal", 3, 8, {"width_mult": 0.25}),     # exported with quantize="int8":
]                                                                          # qconv2d, qlinear


def _method_models(skipped: list[str] | None = None) -> dict[str, tuple[Any, Any]]:
    """The :data:`METHOD_MODELS`, in eval mode, with random BatchNorm statistics, SBNN weights in
    {alpha, 0} (sparse: ``sbconv2d``/``sblinear``) and Si-BNN scales of both signs (and some 0), so that
    the exported thresholds and gains are not the trivial ones of a fresh model. No training."""
    import torch
    from torch import nn

    try:
        zoo, methods = importlib.import_module("onebit.models"), importlib.import_module("onebit.methods")
    except ImportError:
        return {}
    out = {}
    for key, name, method, chans, size, kwargs in METHOD_MODELS:
        try:
            if isinstance(method, tuple):
                base, changes = method
                method = methods.get(base).modified_by(f"{base}+fuzz", "", changes)
            torch.manual_seed(0)
            g = torch.Generator().manual_seed(0)
            model = zoo.create(name, in_chans=chans, method=method, **kwargs).eval()
            x = torch.randn(1, chans, size, size, generator=g)
            with torch.no_grad():
                model(x)  # materializes lazily sized quantizer parameters
                for mod in model.modules():
                    if isinstance(mod, nn.modules.batchnorm._BatchNorm) and mod.running_mean is not None:
                        mod.running_mean.copy_(0.2 * torch.randn(mod.running_mean.shape, generator=g))
                        mod.running_var.copy_(0.5 + torch.rand(mod.running_var.shape, generator=g))
                    if getattr(mod, "name", None) == "domain_weight":
                        mod.set_values(0.5 + torch.rand((), generator=g).item(), 0.0)
                    if getattr(mod, "name", None) == "si_heaviside" and not mod.positive_scale:
                        mod.raw_scale.copy_(torch.randn(mod.raw_scale.shape, generator=g))
                        mod.raw_scale[::5] = 0.0
                        mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=g))
            out[f"method:{key}"] = (model, x)
        except Exception as exc:  # noqa: BLE001 - a zoo or method change must not break the fuzzer
            if skipped is not None:
                skipped.append(f"method:{key}: {type(exc).__name__}: {str(exc)[:120]}")
    return out


# --------------------------------------------------------------------------- mutations

def _assemble(header_text: bytes, blobs: bytes, *, pad: bool = True, hlen: int | None = None) -> bytes:
    """A file from a header text: padded with spaces to keep the data section aligned, unless not ``pad``."""
    if pad:
        header_text += b" " * (-(24 + len(header_text)) % ALIGN)
    hlen = len(header_text) if hlen is None else hlen
    return _PREAMBLE.pack(b"ONEBIT\x00\x01", 1, 0, hlen) + header_text + blobs


def _dump(obj: Any, rng: random.Random) -> bytes:
    return json.dumps(obj, ensure_ascii=rng.random() < 0.5, separators=(",", ":")).encode("utf-8", "surrogatepass")


def _clone(header: dict) -> dict:
    return json.loads(json.dumps(header))


def mutate_bit_flips(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    """Flip 1-8 bits; half the time only in the preamble and header."""
    buf = bytearray(data)
    if not buf:
        return data
    limit = min(len(buf), 24 + seed.hlen) if rng.random() < 0.5 else len(buf)
    for _ in range(rng.randint(1, 8)):
        buf[rng.randrange(limit)] ^= 1 << rng.randrange(8)
    return bytes(buf)


def mutate_byte_sets(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    """Set 1-4 bytes to values that matter to a parser (0, 0xff, quotes, brackets, digits, ...)."""
    buf = bytearray(data)
    if not buf:
        return data
    limit = min(len(buf), 24 + seed.hlen) if rng.random() < 0.7 else len(buf)
    for _ in range(rng.randint(1, 4)):
        buf[rng.randrange(limit)] = rng.choice(_BYTE_VALUES)
    return bytes(buf)


def mutate_truncate(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    """Cut the file at (or next to) a region boundary: preamble fields, header, each blob, or anywhere."""
    cuts = [0, 1, 7, 8, 12, 16, 23, 24, 24 + seed.hlen // 2, 24 + seed.hlen]
    cuts += [p for span in seed.spans for p in span]
    cut = rng.choice(cuts) + rng.choice([-1, 0, 0, 1]) if rng.random() < 0.8 else rng.randrange(len(data) + 1)
    return data[:max(0, min(cut, len(data)))]


def mutate_extend(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    """Append zeros, random bytes or another copy of the data section."""
    choice = rng.randrange(3)
    tail = bytes(rng.randint(1, 200)) if choice == 0 else rng.randbytes(rng.randint(1, 200)) if choice == 1 \
        else seed.blobs
    return data + tail


def mutate_preamble(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    """Set the version, reserved or header-length field to a boundary value."""
    buf = bytearray(data)
    which = rng.randrange(3)
    if which == 2:
        n = len(data)
        value = rng.choice([0, 1, 8, 40, seed.hlen - 1, seed.hlen + 1, seed.hlen - 64, seed.hlen + 64, n - 24,
                            n - 24 + 64, n, 2**31, 2**32, 2**63, 2**64 - 1, (64 << 20) - 24, (64 << 20) + 40])
        struct.pack_into("<Q", buf, 16, value % 2**64)
    else:
        value = rng.choice([0, 2, 255, 2**31, 2**32 - 1, 1 << 16])
        struct.pack_into("<I", buf, 8 + 4 * which, value)
    return bytes(buf)


def mutate_entry_field(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    """One tensor entry's dtype/shape/offset/nbytes set to a wrong-type, huge, negative or off-by-one value."""
    header = _clone(seed.header)
    if not header["tensors"]:
        return mutate_top_level(rng, seed, data)
    entry = header["tensors"][rng.choice(sorted(header["tensors"]))]
    key = rng.choice(_FIELDS)
    old = entry[key]
    if isinstance(old, int) and rng.random() < 0.5:
        entry[key] = old + rng.choice([-65, -64, -1, 1, 63, 64, 65, 2**32, 2**63, -2 * old - 1])
    elif key == "shape" and rng.random() < 0.5:
        entry[key] = _odd_shape(rng, old)
    else:
        entry[key] = rng.choice(INTERESTING)
    return _assemble(_dump(header, rng), seed.blobs)


def _odd_shape(rng: random.Random, shape: list[int]) -> list:
    choice = rng.randrange(5)
    if choice == 0:
        return shape + [1] * rng.choice([1, 31, 32, 33, 63, 64, 65, 1000])
    if choice == 4:  # an empty tensor whose other dimensions overflow numpy's size
        return [0] + [2**rng.randrange(30, 64) for _ in range(rng.randint(1, 3))]
    if choice == 1:
        return [2**rng.randrange(20, 64) for _ in range(rng.randint(1, 6))]
    if choice == 2:
        return list(reversed(shape)) + [0]
    return [d * 2 for d in shape]


def mutate_keys(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    """Delete or add a key: top level, one entry, metadata; or a non-string metadata value."""
    header = _clone(seed.header)
    choice = rng.randrange(4)
    if choice == 0:
        header.pop(rng.choice(["graph", "metadata", "tensors"]))
    elif choice == 1:
        header[rng.choice(["extra", "Graph", "tensors ", ""])] = rng.choice(INTERESTING)
    elif choice == 2 and header["tensors"]:
        entry = header["tensors"][rng.choice(sorted(header["tensors"]))]
        if rng.random() < 0.5:
            entry.pop(rng.choice(_FIELDS))
        else:
            entry[rng.choice(["align", "dtype2", ""])] = 0
    else:
        header["metadata"][rng.choice(_ODD_STRINGS)] = rng.choice(INTERESTING + _ODD_STRINGS)
    return _assemble(_dump(header, rng), seed.blobs)


def mutate_top_level(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    """The header, ``tensors``, ``metadata`` or one entry replaced by a value of the wrong type."""
    header = _clone(seed.header)
    target = rng.randrange(4)
    if target == 0:
        header = rng.choice(INTERESTING)
    elif target == 1:
        header["tensors"] = rng.choice(INTERESTING)
    elif target == 2:
        header["metadata"] = rng.choice(INTERESTING)
    elif header["tensors"]:
        header["tensors"][rng.choice(sorted(header["tensors"]))] = rng.choice(INTERESTING)
    return _assemble(_dump(header, rng), seed.blobs)


def mutate_overlap(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    """Point one blob into another's bytes, or many entries at the same blob (an allocation bomb)."""
    header = _clone(seed.header)
    tensors = header["tensors"]
    names = sorted(tensors)
    if len(names) < 2 or rng.random() < 0.3:
        if not names:
            return mutate_top_level(rng, seed, data)
        entry = tensors[rng.choice(names)]
        for i in range(rng.choice([2, 10, 500])):
            tensors[f"copy{i}"] = dict(entry)
    else:
        a, b = rng.sample(names, 2)
        tensors[a]["offset"] = tensors[b]["offset"] + rng.choice([0, 0, 64])
    return _assemble(_dump(header, rng), seed.blobs)


def mutate_duplicate_name(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    """A JSON object with a repeated key: a tensor name, a metadata key or a top-level key."""
    header = seed.header
    text = _dump(header, rng)
    if header["tensors"] and rng.random() < 0.6:
        name = rng.choice(sorted(header["tensors"]))
        item = _dump({name: header["tensors"][name]}, rng)[1:-1]
        text = text.replace(b'"tensors":{', b'"tensors":{' + item + b",", 1)
    elif rng.random() < 0.5:
        text = text.replace(b'"metadata":{', b'"metadata":{"k":"a","k":"b",', 1)
    else:
        text = b'{"metadata":{},' + text[1:]
    return _assemble(text, seed.blobs)


def mutate_unicode(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    """Odd strings as names and values: NUL, lone surrogates, RTL marks, BOMs, invalid UTF-8."""
    header = _clone(seed.header)
    choice = rng.randrange(3)
    if choice == 0 and header["tensors"]:
        name = rng.choice(sorted(header["tensors"]))
        header["tensors"][rng.choice(_ODD_STRINGS)] = header["tensors"].pop(name)
    elif choice == 1 and header["tensors"]:
        header["tensors"][rng.choice(sorted(header["tensors"]))]["dtype"] = rng.choice(_ODD_STRINGS + ["float32\x00"])
    else:
        header["graph"] = {rng.choice(_ODD_STRINGS): rng.choice(_ODD_STRINGS)}
    text = _dump(header, rng)
    if rng.random() < 0.3:
        text = rng.choice([b"\xef\xbb\xbf", b"\xff\xfe", b"\xc3", b"\xed\xa0\x80"]) + text
    return _assemble(text, seed.blobs)


def mutate_json_text(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    """The graph replaced by hostile JSON text: deep nesting, 5000-digit numbers, NaN/Infinity, 1e999."""
    hostile = rng.choice([b"[" * 100_000 + b"]" * 100_000, b"{\"a\":" * 5000 + b"1" + b"}" * 5000,
                          b"1" * 5000, b"-" + b"9" * 4400, b"NaN", b"Infinity", b"-Infinity", b"1e999",
                          b"[1e400,-1e400]", b"0.5e-999999", b"[1,{\"a\":1,\"a\":2}]", b"\"\\ud800\"", b"\"\\u0000\"", b"[" * 50 + b"]" * 49])
    text = _dump(_clone(seed.header), rng)
    graph = _dump(seed.header["graph"], rng)
    text = text.replace(b'"graph":' + graph, b'"graph":' + hostile, 1)
    return _assemble(text, seed.blobs)


def mutate_splice(rng: random.Random, seed: Seed, data: bytes, others: Sequence[Seed] = ()) -> bytes:
    """This seed's header with another seed's data section (or the data section shifted by one word)."""
    other = rng.choice(others) if others else seed
    blobs = other.blobs if other is not seed else seed.blobs[64:]
    return data[:24 + seed.hlen] + blobs


def mutate_blobs(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    """Random bytes in the data section: must always parse (blob contents are not validated)."""
    buf = bytearray(data)
    start = 24 + seed.hlen
    if len(buf) > start:
        a = rng.randrange(start, len(buf))
        b = min(len(buf), a + rng.randint(1, 256))
        buf[a:b] = rng.randbytes(b - a)
    return bytes(buf)


def _leaves(node: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leaves(v, path + (k,))]
    if isinstance(node, list) and node and not all(isinstance(v, (int, float)) for v in node):
        return [p for i, v in enumerate(node) for p in _leaves(v, path + (i,))]
    return [path]


def mutate_graph_leaf(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    """One value inside the graph (an attribute, a shape, a name, an op kind) changed: the file stays
    a valid container, so this reaches whatever interprets the graph (the engine's validation)."""
    header = _clone(seed.header)
    paths = _leaves(header["graph"])
    if not paths or paths == [()]:
        return mutate_json_text(rng, seed, data)
    path = rng.choice(paths)
    parent = header["graph"]
    for key in path[:-1]:
        parent = parent[key]
    old = parent[path[-1]]
    if isinstance(old, int) and not isinstance(old, bool) and rng.random() < 0.6:
        new: Any = rng.choice([0, -1, 1, old + 1, old - 1, 2 * old, -old, old + 64, 2**31, 2**40])
    elif isinstance(old, list) and old and rng.random() < 0.6:
        new = rng.choice([old[:-1], old + old[-1:], [0] * len(old), [2**31] * len(old), list(reversed(old))])
    elif isinstance(old, str) and rng.random() < 0.5:
        new = rng.choice(_leaf_strings(header["graph"]))
    else:
        new = rng.choice(INTERESTING)
    parent[path[-1]] = new
    return _assemble(_dump(header, rng), seed.blobs)


def _leaf_strings(graph: Any) -> list[str]:
    """Every string in the graph (op kinds, value and tensor names): swapping them is a plausible bug."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            found.extend(k for k in node)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str):
            found.append(node)

    walk(graph)
    return found or [""]


MUTATIONS: dict[str, Callable[..., bytes]] = {
    "bit_flips": mutate_bit_flips, "byte_sets": mutate_byte_sets, "truncate": mutate_truncate,
    "extend": mutate_extend, "preamble": mutate_preamble, "entry_field": mutate_entry_field,
    "keys": mutate_keys, "top_level": mutate_top_level, "overlap": mutate_overlap,
    "duplicate_name": mutate_duplicate_name, "unicode": mutate_unicode, "json_text": mutate_json_text,
    "splice": mutate_splice, "blobs": mutate_blobs, "graph_leaf": mutate_graph_leaf,
}
_BYTE_LEVEL = ("bit_flips", "byte_sets", "truncate")


def make_case(seeds: Sequence[Seed], seed: int, index: int) -> tuple[str, bytes]:
    """Case ``index`` of run ``seed``: ``(description, bytes)``, a pure function of its arguments."""
    rng = random.Random(seed * 1_000_003 + index)
    base = seeds[rng.randrange(len(seeds))]
    name = rng.choice(sorted(MUTATIONS))
    fn = MUTATIONS[name]
    data = fn(rng, base, base.data, seeds) if name == "splice" else fn(rng, base, base.data)
    kinds = [name]
    while rng.random() < 0.25:  # stack byte-level damage on top
        extra = rng.choice(_BYTE_LEVEL)
        data = MUTATIONS[extra](rng, base, data)
        kinds.append(extra)
    # Format version 2 files carry a CRC-32: most byte-level damage to a seed would stop there. Resealing
    # (checksum recomputed) 4 times in 5 lets it reach the structural checks behind; the rest test the
    # checksum itself. (Mutations that rebuild the header write version 1, which has no checksum.)
    if "preamble" not in kinds and rng.random() < 0.8:
        data = seal(data)
    return f"{base.name}:{'+'.join(kinds)}", data


# --------------------------------------------------------------------------- the oracle

class FuzzFailure(AssertionError):
    """``read_model`` broke its contract on one input."""


def _equal(a: ModelFile, b: ModelFile) -> bool:
    if json.dumps(a.graph) != json.dumps(b.graph) or a.metadata != b.metadata or a.tensors.keys() != b.tensors.keys():
        return False
    return all(a.tensors[k].dtype == b.tensors[k].dtype and a.tensors[k].shape == b.tensors[k].shape
               and a.tensors[k].tobytes() == b.tensors[k].tobytes() for k in a.tensors)


def _check_consistent(model: Any, data: bytes) -> None:
    """A parsed file must be a well-typed ModelFile of independent arrays that round-trips."""
    if not isinstance(model, ModelFile) or not isinstance(model.tensors, dict) or not isinstance(model.metadata, dict):
        raise FuzzFailure(f"read_model returned {type(model).__name__}, not a ModelFile")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in model.metadata.items()):
        raise FuzzFailure("metadata is not str -> str")
    total = 0
    for name, array in model.tensors.items():
        if not isinstance(name, str) or not isinstance(array, np.ndarray):
            raise FuzzFailure(f"tensor {name!r} is {type(array).__name__}")
        if array.dtype not in (np.float32, np.int32, np.uint64, np.uint8, np.int8) or not array.flags.c_contiguous:
            raise FuzzFailure(f"tensor {name!r}: dtype {array.dtype}, contiguous {array.flags.c_contiguous}")
        if not array.flags.writeable or not array.flags.owndata:
            raise FuzzFailure(f"tensor {name!r} is a view, not an independent copy")
        total += array.nbytes
    if total > len(data):
        raise FuzzFailure(f"{total} tensor bytes out of a {len(data)}-byte file")
    try:
        again = read_model(write_model(model))
    except (ValueError, TypeError, RecursionError) as exc:
        raise FuzzFailure(f"a parsed file does not write back: {type(exc).__name__}: {exc}") from exc
    if not _equal(model, again):
        raise FuzzFailure("write_model(read_model(x)) reads back differently")


def _alarm(signum: int, frame: Any) -> None:
    raise CaseTimeout


def check(data: bytes, *, time_limit: float | None = 2.0, memory_factor: int | None = None,
          engine: bool = False) -> str:
    """Run the reader on ``data``: ``"ok"`` or ``"error: <kind>"``; raises :class:`FuzzFailure` when
    the contract is broken. ``time_limit`` (seconds, main thread only) catches hangs;
    ``memory_factor`` (with tracemalloc running) fails a read whose peak allocation exceeds
    ``memory_factor * len(data) + 1 MiB``. With ``engine``, a file the reader accepts is also loaded
    by ``onebit.Engine`` (which must accept it or raise ModelFileError) and run on a random batch:
    the outcome is then ``"engine runs"`` or ``"engine rejects: <kind>"``."""
    old = signal.signal(signal.SIGALRM, _alarm) if time_limit else None
    if time_limit:
        signal.setitimer(signal.ITIMER_REAL, time_limit)
    try:
        model = _read(data, memory_factor)
        if isinstance(model, str):
            return model
        _check_consistent(model, data)
        return _engine_outcome(data) if engine else "ok"
    except CaseTimeout:
        raise FuzzFailure(f"hang: more than {time_limit} s") from None
    except FuzzFailure:
        raise
    except Exception as exc:  # noqa: BLE001 - any other exception is exactly what we look for
        raise FuzzFailure(f"{type(exc).__name__}: {exc}"[:500]) from exc
    finally:
        if time_limit:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)


def _read(data: bytes, memory_factor: int | None) -> ModelFile | str:
    """read_model's result, or ``"error: <kind>"``; checks the allocation bound when asked."""
    if memory_factor:
        tracemalloc.reset_peak()
    try:
        result: ModelFile | str = read_model(data)
    except ModelFileError as exc:
        result = "error: " + error_kind(str(exc))
    if memory_factor:
        peak = tracemalloc.get_traced_memory()[1]
        if peak > memory_factor * len(data) + (1 << 20):
            raise FuzzFailure(f"allocated {peak} bytes for a {len(data)}-byte file")
    return result


def _engine_outcome(data: bytes) -> str:
    from ..engine import Engine  # lazily: the reader alone needs no C++ extension

    try:
        engine = Engine(data)
    except ModelFileError as exc:
        return "engine rejects: " + error_kind(str(exc))
    x = np.random.default_rng(0).standard_normal((2, *engine.input_shape)).astype(np.float32)
    y = engine(x)
    if not isinstance(y, np.ndarray) or y.shape[0] != 2:
        raise FuzzFailure(f"engine returned {type(y).__name__} {getattr(y, 'shape', None)} for a batch of 2")
    return "engine runs"


_KINDS = [("shorter than", "truncated preamble"), ("bad magic", "bad magic"), ("reserved", "reserved field"),
          ("format version", "version"), ("runs past the end", "header length"), ("aligned", "header alignment"),
          ("duplicate key", "duplicate key"), ("not valid JSON", "header JSON"), ("exactly the keys", "header keys"),
          ("metadata", "metadata"), ("tensors must", "tensors type"), ("entry must", "entry keys"),
          ("unknown dtype", "dtype"), ("dimensions", "shape rank"), ("too large", "shape size"), ("shape", "shape"), ("offset", "offset"),
          ("nbytes", "nbytes"), ("run past", "blob past end"), ("overlap", "overlap")]


def error_kind(message: str) -> str:
    """A short category for a ModelFileError message (for the report's histogram)."""
    kind = next((kind for needle, kind in _KINDS if needle in message), None)
    return kind or re.sub(r"'[^']*'|\d+", "_", message.removeprefix("invalid .onebit file: "))[:60]


# --------------------------------------------------------------------------- the driver

@dataclass
class FuzzReport:
    """Counts of a run: outcomes by kind, mutations used, failures with their case index."""

    cases: int = 0
    outcomes: Counter = field(default_factory=Counter)
    mutations: Counter = field(default_factory=Counter)
    failures: list[tuple[int, str, str]] = field(default_factory=list)  # (index, case, message)
    slowest: float = 0.0
    slowest_case: str = ""
    memory_checked: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """A human-readable multi-line summary."""
        ok = sum(n for k, n in self.outcomes.items() if not k.startswith("error: "))
        lines = [f"cases run: {self.cases} in {self.seconds:.1f} s ({self.cases / max(self.seconds, 1e-9):.0f}/s), "
                 f"slowest case {1e3 * self.slowest:.1f} ms: {self.slowest_case}",
                 f"cases with the allocation bound checked (tracemalloc): {self.memory_checked}",
                 f"parsed ok: {ok}; rejected by the reader with ModelFileError: {self.cases - ok - len(self.failures)}; "
                 f"crashes (contract failures): {len(self.failures)}", "errors by kind:"]
        lines += [f"  {n:8d}  {k[len('error: '):]}" for k, n in self.outcomes.most_common() if k.startswith("error: ")]
        engine = [(k, n) for k, n in self.outcomes.most_common() if k.startswith("engine")]
        if engine:
            lines += ["engine outcomes (files the reader accepted):"] + [f"  {n:8d}  {k}" for k, n in engine]
        lines += ["mutations:"] + [f"  {n:8d}  {k}" for k, n in sorted(self.mutations.items())]
        lines += [f"FAILURE case {i} ({case}): {msg}" for i, case, msg in self.failures[:20]]
        return "\n".join(lines)


def run(seeds: Sequence[Seed], *, cases: int, seed: int = 0, start: int = 0, time_limit: float | None = 2.0,
        memory_factor: int = 64, memory_every: int = 0, engine: bool = False,
        on_failure: Callable[[int, str, bytes, str], None] | None = None,
        progress: Callable[[FuzzReport], None] | None = None) -> FuzzReport:
    """Fuzz ``cases`` cases (indices ``start ...``) of run ``seed`` over ``seeds``; see :func:`check`.

    Every ``memory_every``-th case (0: none) runs under tracemalloc with the ``memory_factor``
    bound (tracing slows a case ~10x, so long runs sample). ``engine``: see :func:`check`."""
    if not seeds:
        raise ValueError("run: no seed files")
    report, began = FuzzReport(), time.perf_counter()
    for index in range(start, start + cases):
        traced = memory_every > 0 and index % memory_every == 0 and not tracemalloc.is_tracing()
        if traced:
            tracemalloc.start()
        try:
            _one(seeds, seed, index, report, time_limit, memory_factor if traced else None, engine, on_failure)
        finally:
            if traced:
                tracemalloc.stop()
        report.memory_checked += traced
        if progress is not None and (index - start + 1) % 10_000 == 0:
            report.seconds = time.perf_counter() - began
            progress(report)
    report.seconds = time.perf_counter() - began
    return report


def _one(seeds: Sequence[Seed], seed: int, index: int, report: FuzzReport, time_limit: float | None,
         memory_factor: int | None, engine: bool,
         on_failure: Callable[[int, str, bytes, str], None] | None) -> None:
    case, data = make_case(seeds, seed, index)
    report.cases += 1
    report.mutations.update(case.rsplit(":", 1)[1].split("+")[:1])
    t0 = time.perf_counter()
    try:
        report.outcomes[check(data, time_limit=time_limit, memory_factor=memory_factor, engine=engine)] += 1
    except FuzzFailure as exc:
        report.failures.append((index, case, str(exc)))
        if on_failure is not None:
            on_failure(index, case, data, str(exc))
    elapsed = time.perf_counter() - t0
    if elapsed > report.slowest:
        report.slowest, report.slowest_case = elapsed, f"{index} ({case})"


def load_seed_files(paths: Iterable[str]) -> list[Seed]:
    """Seeds from ``.onebit`` files on disk (each must be valid)."""
    seeds = []
    for path in paths:
        with open(path, "rb") as f:
            seeds.append(Seed(str(path), f.read()))
    return seeds
