"""Capture: trace an eval-mode model with torch.fx, binary layers and method modules kept as leaves."""

from __future__ import annotations

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from .. import nn as onn
from ..quantizers import Quantizer

__all__ = ["ExportError", "capture"]

# Modules the converter lowers as a whole (their forward has data-dependent Python or autograd Functions).
LEAF_TYPES = (onn.BinaryConv2d, onn.BinaryLinear, onn.RPReLU, onn.LearnableBias, onn.DyPReLU,
              onn.ElasticLink, Quantizer)


class ExportError(ValueError):
    """The model cannot be exported; the message names the module and what to do."""


def _zoo_leaf_types() -> tuple[type, ...]:
    """Zoo layers whose forward reads buffers or slices (lowered whole by lower_methods.py)."""
    from ..models.quicknet import BlurPool2d  # noqa: PLC0415  (models import late: no cycle)
    from ..nn.blocks import _OptionA  # noqa: PLC0415

    return (BlurPool2d, _OptionA)


class _Tracer(fx.Tracer):
    def __init__(self) -> None:
        super().__init__()
        self.leaf_types = LEAF_TYPES + _zoo_leaf_types()

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, self.leaf_types) or super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception as exc:  # remember the innermost module whose forward failed to trace
            if not hasattr(exc, "_onebit_module"):
                exc._onebit_module = self.path_of_module(m) or type(m).__name__  # type: ignore[attr-defined]
            raise


def capture(model: nn.Module, example_input: torch.Tensor) -> fx.GraphModule:
    """Trace ``model`` (put in eval mode) and annotate every node with its example shape.

    Raises :class:`ExportError` naming the module that torch.fx cannot trace.
    """
    if not isinstance(example_input, torch.Tensor) or example_input.dim() != 4:
        raise ExportError("example_input must be an (N, C, H, W) float tensor, got "
                          f"{getattr(example_input, 'shape', type(example_input).__name__)}")
    model.eval()
    tracer = _Tracer()
    try:
        graph = tracer.trace(model)
    except Exception as exc:
        where = getattr(exc, "_onebit_module", type(model).__name__)
        raise ExportError(
            f"torch.fx cannot trace module {where!r}: {type(exc).__name__}: {exc}. Data-dependent Python "
            "control flow cannot be exported; rewrite that forward with tensor ops, or make the module a "
            "supported leaf (see onebit.export.lower.SUPPORTED)") from exc
    gm = fx.GraphModule(model, graph)
    with torch.no_grad():
        ShapeProp(gm).propagate(example_input.detach().to(torch.float32).cpu())
    return gm
