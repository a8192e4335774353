"""``export`` / ``save``: capture, fold, pack and write a model as a ``.onebit`` file."""

from __future__ import annotations

import os

import torch
from torch import nn

from .capture import ExportError, capture
from .format import ModelFile, read_model, write_model
from .graph import validate
from .lower import lower
from .quantize import check_scheme, quantize_graph

__all__ = ["export", "load", "save"]


def export(model: nn.Module, example_input: torch.Tensor, *, metadata: dict[str, str] | None = None,
           quantize: str | None = None) -> bytes:
    """Convert ``model`` (put in eval mode) into the bytes of a ``.onebit`` file.

    ``example_input`` is an (N, C, H, W) tensor; the file is specialised to its C, H, W (any batch).
    ``quantize=None`` keeps the float layers (stem, classifier, float shortcuts) in float32, so the
    engine reproduces the PyTorch model; ``quantize="int8"`` stores them as int8 and runs them in integer
    arithmetic (:mod:`onebit.export.quantize`: faster and 4x smaller, at 8-bit rounding error).
    Raises :class:`ExportError` naming any module that cannot be traced or lowered.
    """
    if not isinstance(model, nn.Module):
        raise ExportError(f"export needs an nn.Module, got {type(model).__name__}")
    check_scheme(quantize)
    was_training = model.training
    try:
        gm = capture(model, example_input)
        graph, tensors = lower(gm)
    finally:
        model.train(was_training)
    if quantize is not None:
        graph, tensors = quantize_graph(graph, tensors, quantize)
    meta = {"producer": "onebit", "torch": torch.__version__, **({"quantize": quantize} if quantize else {}),
            **(metadata or {})}
    mf = ModelFile(graph=graph, tensors=tensors, metadata=meta)
    validate(mf)  # the writer must never produce a file the reader refuses
    return write_model(mf)


def save(model: nn.Module, example_input: torch.Tensor, path: str | os.PathLike, **kwargs) -> None:
    """``export`` and write the bytes to ``path``."""
    blob = export(model, example_input, **kwargs)
    with open(path, "wb") as f:
        f.write(blob)


def load(path_or_bytes) -> ModelFile:
    """Read and validate a ``.onebit`` file (a path or its bytes)."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        blob = bytes(path_or_bytes)
    else:
        with open(path_or_bytes, "rb") as f:
            blob = f.read()
    mf = read_model(blob)
    validate(mf)
    return mf
