"""``onebit.Engine``: run a ``.onebit`` model with the C++ engine (no Python per layer).

::

    engine = onebit.Engine("model.onebit", num_threads=2)   # or the bytes of onebit.export.export(...)
    logits = engine(x)                                        # numpy (N, C, H, W) float32 or a torch CPU tensor

The file is read and validated in Python (:func:`onebit.export.load`), then handed to the C++ engine
as typed op records; the engine plans its activation arena once and runs every op in C++
(``csrc/engine``). Calls are thread-safe: each call borrows its own arena from a pool, so concurrent
calls run in parallel. The result has the input's type (numpy in, numpy out; torch in, torch out).

Inputs must be finite: a NaN or Inf anywhere in the batch raises ``ValueError`` (checked in C++, one
pass over the input). The engine's binarization would map NaN to +1 where PyTorch's ``ste_sign`` gives
-1, so the two would otherwise disagree silently. An empty batch (N = 0) gives an empty output of shape
``(0, *output_shape)``. A malformed file raises :class:`onebit.export.ModelFileError`, never anything else.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from . import _blas  # noqa: F401  (loads OpenBLAS for _C first)
from . import _C
from .export.converter import load
from .export.format import ModelFile, ModelFileError
from .export.graph import validate

__all__ = ["Engine"]

_KIND = {"float": 0, "bits": 1}
_DOMAIN = {"pm1": 0, "01": 1}
_TENSOR_DTYPES = {np.dtype(np.float32): 0, np.dtype(np.uint64): 1, np.dtype(np.int32): 2, np.dtype(np.uint8): 3}


def _op_record(op: dict, index: dict[str, int], tensors: dict[str, np.ndarray]) -> tuple:
    # op is validated (graph.py): attributes are bools, bounded ints, finite numbers, strings or int lists.
    ints, reals, strs = {}, {}, {}
    for key, v in op.get("attrs", {}).items():
        if isinstance(v, bool):
            ints[key] = [int(v)]
        elif isinstance(v, int):  # a real attribute may be written as a JSON integer (-1 for -1.0)
            if -2**63 <= v < 2**63:
                ints[key] = [v]
            reals[key] = float(v)
        elif isinstance(v, list):
            ints[key] = [int(x) for x in v]
        elif isinstance(v, float):
            reals[key] = v
        else:
            strs[key] = str(v)
    arrays: list[dict[str, np.ndarray]] = [{}, {}, {}, {}]
    for role, name in op.get("tensors", {}).items():
        arr = tensors[name]
        if arr.dtype == np.int8:  # int8 weights travel as their bytes; the op reads them back as int8
            arr = arr.view(np.uint8)
        arrays[_TENSOR_DTYPES[arr.dtype]][role] = np.ascontiguousarray(arr.reshape(-1))
    return (op["op"], op.get("name", ""), [index[n] for n in op["inputs"]], [index[n] for n in op["outputs"]],
            ints, reals, strs, *arrays)


class Engine:
    """A compiled ``.onebit`` model. ``Engine(path_or_bytes, *, num_threads=1)``; call it on inputs."""

    def __init__(self, model: str | os.PathLike | bytes | ModelFile, *, num_threads: int = 1) -> None:
        if not isinstance(num_threads, int) or isinstance(num_threads, bool) or num_threads < 1:
            raise ValueError(f"num_threads must be a positive int, got {num_threads!r}")
        mf = model if isinstance(model, ModelFile) else load(model)
        if isinstance(model, ModelFile):
            validate(mf)
        g = mf.graph
        names = list(g["values"])
        index = {n: i for i, n in enumerate(names)}
        values = [(_KIND[v["kind"]], list(v["shape"]), _DOMAIN.get(v.get("domain", "pm1"), 0))
                  for v in (g["values"][n] for n in names)]
        ops = [_op_record(op, index, mf.tensors) for op in g["ops"]]
        self.input_shape = tuple(g["values"][g["inputs"][0]]["shape"])
        self.output_shape = tuple(g["values"][g["outputs"][0]]["shape"])
        self.metadata = dict(mf.metadata)
        self.ops = [{"op": op["op"], "name": op.get("name", "")} for op in g["ops"]]
        try:  # the C++ engine re-checks what it relies on (std::invalid_argument -> ValueError)
            self._engine = _C.Engine(values, ops, index[g["inputs"][0]], index[g["outputs"][0]], num_threads)
        except ValueError as exc:
            raise ModelFileError(f"invalid .onebit graph: {exc}") from None

    @property
    def packed_weight_bytes(self) -> int:
        """Bytes of weights packed at load for the kernels dispatch picked then (0 when none needed it)."""
        return self._engine.packed_weight_bytes

    @property
    def num_threads(self) -> int:
        return self._engine.num_threads

    def __call__(self, x: Any):
        """Run on an (N, C, H, W) float32 batch (numpy array or torch CPU tensor); returns the same type.

        Raises ``ValueError`` if the input holds a NaN or Inf; N = 0 gives an empty (0, ...) output."""
        arr = self._check(x)
        out = np.empty((arr.shape[0], *self.output_shape), dtype=np.float32)
        self._engine.run(arr, out)
        return torch.from_numpy(out) if isinstance(x, torch.Tensor) else out

    def _check(self, x: Any) -> np.ndarray:
        """x as a C-contiguous float32 (N, C, H, W) numpy array; clear errors otherwise."""
        if isinstance(x, torch.Tensor):
            if x.device.type != "cpu":
                raise ValueError(f"the engine runs on CPU tensors, got device {x.device}")
            if x.dtype != torch.float32:
                raise TypeError(f"the engine takes float32 input, got {x.dtype}")
            arr = x.detach().contiguous().numpy()
        elif isinstance(x, np.ndarray):
            if x.dtype != np.float32:
                raise TypeError(f"the engine takes float32 input, got {x.dtype}")
            arr = np.ascontiguousarray(x)
        else:
            raise TypeError(f"the engine takes a numpy array or a torch tensor, got {type(x).__name__}")
        if arr.ndim != 4 or arr.shape[1:] != self.input_shape:
            raise ValueError(f"input must have shape (N, {', '.join(map(str, self.input_shape))}), got {arr.shape}")
        return arr

    def profile(self, x: Any) -> list[tuple[str, str, float]]:
        """Run once to warm up, then once timing every op: ``[(op type, name, seconds), ...]`` in graph order."""
        arr = self._check(x)
        out = np.empty((arr.shape[0], *self.output_shape), dtype=np.float32)
        secs = self._engine.run_profile(arr, out)
        return [(op["op"], op["name"], s) for op, s in zip(self.ops, secs)]

    def __repr__(self) -> str:
        return (f"Engine(input={self.input_shape}, output={self.output_shape}, num_threads={self.num_threads}, "
                f"arena={self._engine.arena_bytes_per_sample} B/sample)")
