"""The method registry: ``get(name)``, ``list()``, ``combine(base, *modifiers)``."""

from __future__ import annotations

from typing import Any, Callable, Union

from ..registry import Registry
from .base import Method

__all__ = ["METHODS", "MethodSpec", "combine", "get", "list_methods", "modifiers"]

#: name -> a factory returning a new Method (so callers may change what they get)
METHODS: Registry[Callable[[], Method]] = Registry("method")

MethodSpec = Union[str, Method]


def get(spec: MethodSpec, **changes: Any) -> Method:
    """A method config: ``get("si-bnn")`` -> a new :class:`Method`; ``get(method)`` -> that method.

    ``changes`` override fields (``get("reactnet", pad_value=1.0)``). Unknown names raise ValueError
    listing the registered ones.
    """
    if isinstance(spec, Method):
        method = spec
    elif isinstance(spec, str):
        method = METHODS[spec]()
    else:
        raise ValueError(f"cannot get a method from {type(spec).__name__}; use a name ({METHODS.names()}) or a Method")
    return method.with_(**changes) if changes else method


def list_methods() -> list[str]:
    """Registered method names."""
    return METHODS.names()


def modifiers() -> list[str]:
    """Names of the methods that can be combined onto a base (they declare ``modifies``)."""
    return [name for name in METHODS.names() if METHODS[name]().modifies]


def combine(base: MethodSpec, *others: MethodSpec) -> Method:
    """Apply modifier methods to a base: ``combine("reactnet", "dybnn")``, ``combine("bnn+", "sbnn")``.

    Each modifier's ``modifies`` fields replace the base's, except ``regularizers`` and ``recipe``,
    which are merged (so BNN+'s regularizer and SBNN's expected-connections penalty both apply). The
    result is named "base + modifier + ..." and cites every paper. A complete method (empty ``modifies``)
    cannot be applied on top of another: ValueError listing the modifiers.
    """
    method = get(base)
    for other in others:
        mod = get(other)
        if not mod.modifies:
            raise ValueError(f"{mod.method!r} is a complete method, not a modifier; modifiers: {modifiers()}")
        changes = method.merged_changes(mod.modifies)
        papers = "; ".join(p for p in (method.paper, mod.paper) if p)
        method = method.with_(**changes, method=f"{method.method} + {mod.method}", paper=papers, modifies={})
    return method
