"""``binarize_(model, config)``: swap a model's Conv2d / Linear layers, in place, for binary ones.

The config is a versioned, validated dataclass that round-trips through JSON; ``binarize_``
attaches it to the model (``get_config(model)``) so checkpoints can save it.
"""

from __future__ import annotations

import dataclasses
import json
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from torch import nn

from . import quantizers
from .nn import BinaryConv2d, BinaryLinear

__all__ = ["BinarizeConfig", "binarize_", "get_config"]

CONFIG_VERSION = 1
_CONFIG_ATTR = "_onebit_config"
_OVERRIDE_KEYS = {"input_quantizer", "weight_quantizer", "pad_value", "skip"}
_SWAPS: dict[type, type] = {nn.Conv2d: BinaryConv2d, nn.Linear: BinaryLinear}
#: config subclasses by their ``config_type`` (e.g. "method"), so from_dict / from_json restore them
_CONFIG_TYPES: dict[str, type] = {}


def _normalize_spec(spec: Any, what: str) -> Any:
    """A JSON-safe quantizer spec (None, name or dict), validated by building it once."""
    if isinstance(spec, quantizers.Quantizer):
        spec = spec.to_config()
    if spec is not None and not isinstance(spec, (str, dict)):
        raise ValueError(f"{what} must be None, a quantizer name, a dict or a Quantizer, got {type(spec).__name__}")
    quantizers.get(spec, channels=1)  # raises ValueError listing valid names (channels: for per-channel ones)
    return dict(spec) if isinstance(spec, dict) else spec


@dataclass
class BinarizeConfig:
    """What ``binarize_`` does to a model.

    Attributes:
        input_quantizer, weight_quantizer: quantizer specs (see :func:`onebit.quantizers.get`).
        pad_value: spatial padding value of binary convs after input quantization (0.0 or e.g. 1.0).
        keep_first: keep the first Conv2d/Linear (in module registration order) in float.
        keep_last: keep the last Conv2d/Linear in float.
        overrides: ``{regex: {key: value}}``; a layer whose fully qualified name fully matches the
            regex gets those settings (keys: input_quantizer, weight_quantizer, pad_value, skip).
            The first matching regex wins. ``{"skip": True}`` keeps the layer float.
        method: name of the method this config came from (informational), or None.
        version: config format version.
    """

    input_quantizer: Any = "ste_sign"
    weight_quantizer: Any = "ste_sign"
    pad_value: float = 0.0
    keep_first: bool = True
    keep_last: bool = True
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    method: str | None = None
    version: int = CONFIG_VERSION

    #: set by subclasses (``onebit.methods.Method``: "method"); stored in to_dict() when not None
    config_type: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("config_type"):
            _CONFIG_TYPES[cls.config_type] = cls

    def __post_init__(self) -> None:
        if self.version != CONFIG_VERSION:
            raise ValueError(f"BinarizeConfig version {self.version} is not supported (this onebit reads {CONFIG_VERSION})")
        self.input_quantizer = _normalize_spec(self.input_quantizer, "input_quantizer")
        self.weight_quantizer = _normalize_spec(self.weight_quantizer, "weight_quantizer")
        self.pad_value = float(self.pad_value)
        for pattern, settings in self.overrides.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"override key {pattern!r} is not a valid regex: {exc}") from None
            if not isinstance(settings, dict):
                raise ValueError(f"override {pattern!r} must map to a dict, got {type(settings).__name__}")
            unknown = set(settings) - _OVERRIDE_KEYS
            if unknown:
                raise ValueError(f"override {pattern!r} has unknown keys {sorted(unknown)}; valid: {sorted(_OVERRIDE_KEYS)}")
            for key in ("input_quantizer", "weight_quantizer"):
                if key in settings:
                    settings[key] = _normalize_spec(settings[key], f"override {pattern!r} {key}")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.config_type is not None:
            data["config_type"] = self.config_type
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BinarizeConfig":
        data = dict(data)
        kind = data.pop("config_type", None)
        if kind is not None:
            if kind not in _CONFIG_TYPES or not issubclass(_CONFIG_TYPES[kind], cls):
                raise ValueError(f"unknown config_type {kind!r} for {cls.__name__}; valid: {sorted(_CONFIG_TYPES)}")
            cls = _CONFIG_TYPES[kind]
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown BinarizeConfig fields {sorted(unknown)}; valid: {sorted(names)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "BinarizeConfig":
        return cls.from_dict(json.loads(text))

    def wrap_layer(self, name: str, layer: nn.Module) -> nn.Module:
        """What ``binarize_`` installs for the binary ``layer`` called ``name``: the layer itself here;
        subclasses may wrap it (a method's Elastic-Link)."""
        return layer

    def layer_settings(self, name: str) -> dict[str, Any]:
        """The settings for the layer called ``name``: the defaults, then the first matching override."""
        settings = {"input_quantizer": self.input_quantizer, "weight_quantizer": self.weight_quantizer,
                    "pad_value": self.pad_value, "skip": False}
        for pattern, override in self.overrides.items():
            if re.fullmatch(pattern, name):
                settings.update(override)
                break
        return settings


def get_config(model: nn.Module) -> BinarizeConfig | None:
    """The config ``binarize_`` applied to ``model``, or None."""
    return getattr(model, _CONFIG_ATTR, None)


def _candidates(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if type(m) in _SWAPS]


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def binarize_(
    model: nn.Module,
    config: BinarizeConfig | str | None = None,
    *,
    filter_fn: Callable[[nn.Module, str], bool] | None = None,
) -> nn.Module:
    """Replace ``model``'s ``nn.Conv2d`` / ``nn.Linear`` layers in place by binary layers; returns ``model``.

    Parameters are kept (the latent weights start from the float ones). The first and last such
    layer stay float unless ``config.keep_first`` / ``keep_last`` is False, which warns: binarizing
    them usually costs much accuracy for little speed. ``filter_fn(module, fqn)`` returning False
    keeps a layer float; ``config.overrides`` set per-layer quantizers by name. ``config`` may be a
    method (``onebit.methods.get("si-bnn")``, a BinarizeConfig subclass) or a method's name.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"binarize_ expects an nn.Module, got {type(model).__name__}")
    config = BinarizeConfig() if config is None else config
    if isinstance(config, str):  # a method name: binarize_(model, "si-bnn")
        from .methods import get as get_method

        config = get_method(config)
    if not isinstance(config, BinarizeConfig):
        raise TypeError(f"config must be a BinarizeConfig, got {type(config).__name__}")
    layers = _candidates(model)
    edge = {0: ("first", config.keep_first), len(layers) - 1: ("last", config.keep_last)}
    for index, (name, module) in enumerate(layers):
        if filter_fn is not None and not filter_fn(module, name):
            continue
        if index in edge:
            which, keep = edge[index]
            if keep:
                continue
            warnings.warn(
                f"binarizing the {which} layer {name!r}: this usually costs much accuracy for little speed "
                f"(set keep_{which}=True to keep it float)", UserWarning, stacklevel=2)
        settings = config.layer_settings(name)
        if settings.pop("skip"):
            continue
        layer = _SWAPS[type(module)].from_float(module, **settings)
        _set_submodule(model, name, config.wrap_layer(name, layer))
    setattr(model, _CONFIG_ATTR, config)
    return model
