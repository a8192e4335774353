"""The quantizer registry and ``get``: turn a spec (None, name, dict or module) into a quantizer."""

from __future__ import annotations

from typing import Any, Union

from ..registry import Registry
from .base import Quantizer

__all__ = ["QUANTIZERS", "QuantizerSpec", "get", "list_quantizers"]

QUANTIZERS: Registry[type[Quantizer]] = Registry("quantizer")

QuantizerSpec = Union[None, str, dict, Quantizer]


def get(spec: QuantizerSpec, *, channels: int | None = None) -> Quantizer | None:
    """Build a quantizer from ``spec``.

    * ``None`` -> ``None`` (no quantization: the layer stays float);
    * ``"ste_sign"`` -> a new quantizer with default hyper-parameters;
    * ``{"name": "ste_sign", "clip_value": 1.5}`` -> a new quantizer with those hyper-parameters;
    * a :class:`Quantizer` module -> that module, unchanged.

    Per-channel quantizers (class attribute ``needs_channels``) are built with ``channels``, the
    channel count of the tensor they quantize (a layer passes it); it is ignored by the others.
    Without it a per-channel quantizer takes the count from its first input.
    Unknown names raise ``ValueError`` listing the registered ones.
    """
    if spec is None or isinstance(spec, Quantizer):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if isinstance(spec, dict):
        if "name" not in spec:
            raise ValueError(f"a quantizer dict needs a 'name' key; valid names: {QUANTIZERS.names()}")
        kwargs: dict[str, Any] = {k: v for k, v in spec.items() if k != "name"}
        cls = QUANTIZERS[spec["name"]]
        if cls.needs_channels and channels is not None:
            kwargs["channels"] = channels
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ValueError(f"bad hyper-parameters for quantizer {spec['name']!r}: {exc}") from None
    raise ValueError(f"cannot build a quantizer from {type(spec).__name__}; use None, a name, a dict or a Quantizer")


def list_quantizers() -> list[str]:
    """Registered quantizer names."""
    return QUANTIZERS.names()
