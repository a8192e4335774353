"""The model registry: ``register_model`` (entrypoints by name), ``create``, ``list_models``, ``model_info``.

A model entrypoint is a small function ``fn(*, num_classes, in_chans, method, **kwargs) -> nn.Module``
registered with the facts the zoo tests and the docs use (layout, input size, paper, published
parameter count, the methods that apply). ``create`` validates the arguments and resolves ``method``
(a name, a list for :func:`onebit.methods.combine`, a Method or a BinarizeConfig) before calling it.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from ..binarize import BinarizeConfig
from ..registry import Registry

__all__ = ["ALL_METHODS", "MODELS", "ModelInfo", "create", "list_models", "model_info", "register_model",
           "resolve_method"]

#: every registered method (``onebit.methods.list()``), the default for what applies to a model
ALL_METHODS = ("bnn", "xnor", "bireal", "reactnet", "si-bnn", "sbnn", "dybnn", "bnn+", "elastic-link")
_LAYOUTS = ("28x28", "cifar", "imagenet")
_COUNTS = ("torch", "keras")
#: an entrypoint: ``fn(*, num_classes, in_chans, method, **kwargs) -> nn.Module``
Entrypoint = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelInfo:
    """What the zoo knows about a registered model.

    Attributes:
        name, fn: the registry key and the entrypoint.
        layout: ``"28x28"`` (Fashion-MNIST), ``"cifar"`` (3x3 stem, 32x32) or ``"imagenet"`` (strided stem, 224x224).
        input_size: the (C, H, W) the model was designed for.
        small_size: the smallest H = W the zoo tests run it at (adaptive pooling handles the rest).
        paper: the architecture's citation.
        published_params: the published parameter count of the *float* model with 3 input channels and
            ``published_classes`` classes, or None when no exact count is published.
        published_classes: the class count ``published_params`` refers to.
        published_count: how the publisher counts: ``"torch"`` (``sum(p.numel() for p in parameters())``)
            or ``"keras"`` (larq zoo: BatchNorm moving mean and variance counted, no BatchNorm scale).
        methods: the methods that apply (``onebit.methods.list()`` names).
        block_based: True when a method is applied through its blocks (``onebit.nn.blocks``), False when the
            float stack is built and ``onebit.binarize_`` swaps its layers.
    """

    name: str
    fn: Entrypoint
    layout: str
    input_size: tuple[int, int, int]
    small_size: int
    paper: str
    published_params: int | None
    published_classes: int
    published_count: str
    methods: tuple[str, ...]
    block_based: bool


MODELS: Registry[ModelInfo] = Registry("model")


def register_model(name: str, *, layout: str, input_size: tuple[int, int, int], paper: str,
                   block_based: bool, small_size: int = 32, published_params: int | None = None,
                   published_classes: int = 1000, published_count: str = "torch",
                   methods: tuple[str, ...] = ALL_METHODS) -> Callable[[Entrypoint], Entrypoint]:
    """Decorator: register an entrypoint ``fn(*, num_classes, in_chans, method, **kwargs)`` under ``name``."""
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {list(_LAYOUTS)}, got {layout!r}")
    if published_count not in _COUNTS:
        raise ValueError(f"published_count must be one of {list(_COUNTS)}, got {published_count!r}")
    unknown = set(methods) - set(ALL_METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)} for model {name!r}; valid: {list(ALL_METHODS)}")

    def add(fn: Entrypoint) -> Entrypoint:
        MODELS.register(name)(ModelInfo(name, fn, layout, tuple(input_size), small_size, paper, published_params,
                                        published_classes, published_count, tuple(methods), block_based))
        return fn

    return add


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, sorted; ``pattern`` filters them with shell wildcards (``"*resnet*"``)."""
    names = MODELS.names()
    return names if pattern is None else [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of ``name``; unknown names raise ValueError listing the valid ones."""
    return MODELS[name]


def resolve_method(spec: Any) -> BinarizeConfig | None:
    """None, a BinarizeConfig (a Method is one), a method name, a list ``[base, modifier, ...]`` for
    :func:`onebit.methods.combine`, or a BinarizeConfig mapping -> the config (or None)."""
    from .. import methods

    if spec is None or isinstance(spec, BinarizeConfig):
        return spec
    if isinstance(spec, str):
        return methods.get(spec)
    if isinstance(spec, (list, tuple)) and spec and all(isinstance(s, (str, BinarizeConfig)) for s in spec):
        return methods.combine(*spec)
    if isinstance(spec, dict):
        return BinarizeConfig.from_dict(spec)
    raise ValueError(f"method must be None, a name ({methods.list()}), a list of names for combine(), "
                     f"a Method or a BinarizeConfig, got {spec!r}")


def _method_names(config: BinarizeConfig) -> list[str]:
    """The registered methods a config is made of (``"reactnet + dybnn"`` -> both; a custom config -> [])."""
    name = config.method or ""
    base = name.split(":")[0]  # "reactnet:step1" is ReActNet's first training stage
    return [part.strip() for part in base.split(" + ") if part.strip() in ALL_METHODS]  # combine()'s " + "


def _check_positive_int(what: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be an int >= 1, got {value!r}")


def create(name: str, *, num_classes: int = 10, in_chans: int = 3, method: Any = None, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` (see :func:`list_models`), float or binarized with ``method``.

    ``method`` is None (a float model), a method name (``onebit.methods.list()``), a list
    ``[base, modifier, ...]`` for :func:`onebit.methods.combine`, a Method or a BinarizeConfig. Block-based
    models are built from the method's blocks; plain conv stacks are built in float and binarized with
    :func:`onebit.binarize_`. The stem conv and the classifier stay float (the papers' choice; a config's
    ``keep_first`` / ``keep_last`` decide). ``onebit.get_config(model)`` returns the config.
    ``kwargs`` go to the entrypoint (e.g. ``width`` for ``cnn28``).

    Raises ValueError for an unknown name (listing the valid ones), a bad ``num_classes`` / ``in_chans``,
    or a method that does not apply to the model (listing those that do).
    """
    info = MODELS[name]
    _check_positive_int("num_classes", num_classes)
    _check_positive_int("in_chans", in_chans)
    config = resolve_method(method)
    if config is not None:
        bad = [m for m in _method_names(config) if m not in info.methods]
        if bad:
            raise ValueError(f"methods {bad} do not apply to model {name!r}; applicable: {list(info.methods)}")
    return info.fn(num_classes=num_classes, in_chans=in_chans, method=config, **kwargs)
