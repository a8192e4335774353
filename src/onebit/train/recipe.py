"""Training recipes: a typed, validated dataclass tree that round-trips through YAML.

A recipe is data, not flags: a few base recipes ship as YAML files (``onebit/train/recipes/``)
and runs differ from them by ``--set a.b=value`` overrides, which are coerced to the field's
declared type. Every value is checked when a section is built, so a bad value fails before
training starts, with the dotted key and what would be valid.

>>> recipe = load_recipe("digits_bnn").override(["optim.lr=3e-3", "epochs=2"])
>>> print(recipe.to_yaml())  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, ClassVar, Literal, Union, get_args, get_origin, get_type_hints

import yaml

__all__ = [
    "DataConfig",
    "DistillConfig",
    "LogConfig",
    "ModelConfig",
    "OptimConfig",
    "PruneConfig",
    "Recipe",
    "RegularizerConfig",
    "ScheduleConfig",
    "list_recipes",
    "load_recipe",
]

RECIPE_VERSION = 1
_NULLS = {"null", "none", "~", ""}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


# --------------------------------------------------------------------------- type coercion

def _type_name(tp: Any) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    return "None" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` as type ``tp`` (strings are parsed: YAML reads ``1e-3`` as a string), or ValueError."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() in _NULLS)):
            return None
        for arg in args:
            if arg is not type(None):
                try:
                    return _coerce(value, arg, key)
                except ValueError:
                    continue
        raise ValueError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        raise ValueError(f"{key}: {value!r} is not one of {list(args)}")
    if tp in (bool, int, float, str):
        return _coerce_scalar(value, tp, key)
    if origin in (list, tuple):
        return _coerce_sequence(value, tp, key)
    if origin is dict or tp is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ValueError(f"{key}: expected {_type_name(tp)}, got {value!r}")
        return dict(value)
    raise TypeError(f"{key}: unsupported field type {tp!r}")


def _coerce_scalar(value: Any, tp: type, key: str) -> Any:
    """bool / int / float / str; numbers and booleans may come as text, but never as each other."""
    bad = ValueError(f"{key}: expected {tp.__name__}, got {value!r}")
    if isinstance(value, str) and tp is not str:
        text = value.strip()
        if tp is bool:
            if text.lower() in _TRUE | _FALSE:
                return text.lower() in _TRUE
            raise bad
        try:
            return tp(text)
        except ValueError:
            raise bad from None
    if tp is bool or tp is str:
        if isinstance(value, tp):
            return value
        raise bad
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (tp is int and isinstance(value, float)):
        raise bad
    return tp(value)


def _coerce_sequence(value: Any, tp: Any, key: str) -> Any:
    """list[T] or tuple[T, ...] / fixed tuple[A, B]; text may be YAML (``[1, 2]``) or ``1,2``."""
    origin, args = get_origin(tp), get_args(tp)
    if isinstance(value, str):
        value = yaml.safe_load(value) if value.strip().startswith("[") else [v for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise ValueError(f"{key}: expected {len(args)} values ({_type_name(tp)}), got {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    item = args[0] if args else Any
    items = [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items


def _parse_override_text(text: str, tp: Any) -> Any:
    """An override's text as YAML, except for plain string fields, which take it verbatim."""
    plain = [a for a in (get_args(tp) if get_origin(tp) in (Union, types.UnionType) else (tp,)) if a is not type(None)]
    if all(a is str or get_origin(a) is Literal for a in plain):
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _unknown_key(key: str, valid: list[str], where: str) -> ValueError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ValueError(f"unknown {where} key {key!r}{hint} Valid keys: {', '.join(valid)}")


# --------------------------------------------------------------------------- sections

class _Section:
    """Base of every recipe section: coerces each field to its declared type, then validates."""

    _section: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(hints[f.name]):
                if value is None:  # an empty section in YAML
                    value = {}
                if isinstance(value, dict):
                    value = hints[f.name].from_dict(value)
                elif not isinstance(value, hints[f.name]):
                    raise ValueError(f"{self._key(f.name)}: expected a mapping, got {value!r}")
            else:
                value = _coerce(value, hints[f.name], self._key(f.name))
            setattr(self, f.name, value)
        self._validate()

    def _key(self, name: str) -> str:
        return f"{self._section}.{name}" if self._section else name

    def _validate(self) -> None:
        """Range checks beyond the types; raise ValueError naming the dotted key."""

    def _check(self, ok: bool, name: str, what: str) -> None:
        if not ok:
            raise ValueError(f"{self._key(name)}: {what}, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """Build the section from a mapping; unknown keys raise ValueError listing the valid ones."""
        if not isinstance(data, dict):
            raise ValueError(f"{cls._section or 'recipe'}: expected a mapping, got {data!r}")
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        for key in data:
            if key not in names:
                raise _unknown_key(str(key), names, cls._section or "recipe")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON-safe data (tuples become lists)."""
        return _plain(dataclasses.asdict(self))  # type: ignore[call-overload]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _is_device(name: str) -> bool:
    import torch  # only here: the rest of the recipe module does not need torch

    try:
        torch.device(name)
    except (RuntimeError, ValueError):
        return False
    return True


def _positive(x: float | int | None) -> bool:
    return x is None or x > 0


@dataclass
class ModelConfig(_Section):
    """What to train. ``name``: a model of ``onebit.models`` or a built-in (``small_cnn``);
    ``method``: a method of ``onebit.methods`` (``bnn``, ``reactnet``, ...), a list of them for
    ``onebit.methods.combine`` (``[reactnet, dybnn]``), an inline BinarizeConfig mapping, or None
    (keep the model float); ``kwargs``: extra arguments for the model constructor."""

    _section: ClassVar[str] = "model"
    name: str = "small_cnn"
    num_classes: int = 10
    in_chans: int = 1
    method: Union[str, list[str], dict, None] = "bnn"
    kwargs: dict[str, Any] = field(default_factory=dict)

    def _validate(self) -> None:
        self._check(self.num_classes >= 2, "num_classes", "must be >= 2")
        self._check(self.in_chans >= 1, "in_chans", "must be >= 1")


@dataclass
class DataConfig(_Section):
    """Where batches come from. ``name``: a dataset of ``onebit.data.get`` or ``synthetic``;
    ``limit`` / ``val_limit``: use only the first N samples; ``augment``: random crops after
    2-pixel zero padding (``shift``), plus random horizontal flips (``shift_flip``); ``kwargs``:
    extra arguments for the dataset loader."""

    _section: ClassVar[str] = "data"
    name: str = "fashion_mnist"
    root: str | None = None
    batch_size: int = 128
    val_batch_size: int = 512
    val_split: str = "test"
    limit: int | None = None
    val_limit: int | None = None
    augment: Literal["none", "shift", "shift_flip"] = "none"
    num_workers: int = 0
    kwargs: dict[str, Any] = field(default_factory=dict)

    def _validate(self) -> None:
        for name in ("batch_size", "val_batch_size", "limit", "val_limit"):
            self._check(_positive(getattr(self, name)), name, "must be > 0")
        self._check(self.num_workers >= 0, "num_workers", "must be >= 0")


@dataclass
class OptimConfig(_Section):
    """The optimizer and what it touches.

    ``weight_decay_rule``: ``onebit`` puts weight decay on real weights (>= 2-D) only, not on latent
    binary weights (the ``weight`` of binary layers) unless ``latent_weight_decay``, nor on 1-D
    parameters (norms, biases) unless ``norm_bias_weight_decay``; ``method`` uses the method's own
    rule, and ``all`` / ``none`` / ``all_but_thresholds`` / ``reactnet`` name one of
    ``onebit.methods.param_groups``' rules (to reproduce a paper). ``clip_latent_weights``: clamp
    latent binary weights to [-c, c] after every step; ``method``: the method's ``latent_clip``
    (1.0 for a plain BinarizeConfig); null: off. ``bop``: Bop (Helwegen et al. 2019) flips binary
    weights (``bop_gamma``, ``bop_threshold``; the schedule scales ``bop_gamma`` like a learning
    rate), the other parameters use Adam with ``lr``."""

    _section: ClassVar[str] = "optim"
    name: Literal["adam", "adamw", "sgd", "bop"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay_rule: str = "onebit"
    latent_weight_decay: bool = False
    norm_bias_weight_decay: bool = False
    clip_latent_weights: Union[Literal["method"], float, None] = "method"
    bop_gamma: float = 1e-4
    bop_threshold: float = 1e-8

    def _validate(self) -> None:
        self._check(self.lr > 0, "lr", "must be > 0")
        self._check(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        self._check(all(0 <= b < 1 for b in self.betas), "betas", "must lie in [0, 1)")
        self._check(0 <= self.momentum < 1, "momentum", "must lie in [0, 1)")
        clip = self.clip_latent_weights
        self._check(clip in ("method", None) or clip > 0, "clip_latent_weights",  # type: ignore[operator]
                    "must be > 0, 'method' or null")
        self._check(0 < self.bop_gamma <= 1, "bop_gamma", "must lie in (0, 1]")
        self._check(self.bop_threshold >= 0, "bop_threshold", "must be >= 0")
        self._check(self.name != "bop" or self.weight_decay_rule == "onebit", "weight_decay_rule",
                    "must be 'onebit' with optim.name=bop (Bop needs the binary weights in their own group)")


@dataclass
class ScheduleConfig(_Section):
    """Learning-rate multiplier, stepped every iteration: optional linear warm-up over
    ``warmup_epochs``, then ``cosine``/``linear`` decay to ``min_lr_ratio``, ``step`` (times
    ``gamma`` at each epoch in ``milestones``), ``onecycle`` (torch's OneCycleLR shape, lr/25 ->
    lr -> lr/25e4, rising for ``warmup_epochs`` or 30% of training) or ``none``."""

    _section: ClassVar[str] = "schedule"
    name: Literal["none", "cosine", "linear", "step", "onecycle"] = "cosine"
    warmup_epochs: float = 0.0
    min_lr_ratio: float = 0.0
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1

    def _validate(self) -> None:
        self._check(self.warmup_epochs >= 0, "warmup_epochs", "must be >= 0")
        self._check(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "must lie in [0, 1]")
        self._check(list(self.milestones) == sorted(set(self.milestones)), "milestones", "must be increasing")
        self._check(0 < self.gamma <= 1, "gamma", "must lie in (0, 1]")


@dataclass
class DistillConfig(_Section):
    """Knowledge distillation: ``teacher`` is an onebit checkpoint (e.g. a float run's best.pt);
    loss = alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE."""

    _section: ClassVar[str] = "distill"
    teacher: str | None = None
    temperature: float = 1.0
    alpha: float = 1.0

    def _validate(self) -> None:
        self._check(self.temperature > 0, "temperature", "must be > 0")
        self._check(0 <= self.alpha <= 1, "alpha", "must lie in [0, 1]")


@dataclass
class RegularizerConfig(_Section):
    """An extra loss term from ``onebit.regularizers.REGULARIZERS`` (``bnn+``, ``expected_connections``),
    built with ``options`` (its strength is one of them: ``lam`` for ``bnn+``, ``gamma`` for
    ``expected_connections``). A method's own terms always apply; this one is added, or replaces the
    method's term of the same name."""

    _section: ClassVar[str] = "regularizer"
    name: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class PruneConfig(_Section):
    """Magnitude pruning of the binary layers (``onebit.sparsity.magnitude_prune_``) at the start of epoch
    ``epoch`` (0-based) to ``sparsity``; training then continues with the masks fixed (pruned weights get
    no gradient). ``granularity: block`` prunes whole 8-output x 64-input-channel blocks per tap, the
    structure the engine skips and stores compactly (SBNN); ``sparsity: 0`` disables pruning."""

    _section: ClassVar[str] = "prune"
    sparsity: float = 0.0
    epoch: int = 0
    granularity: Literal["weight", "block"] = "weight"
    scope: Literal["layer", "global"] = "layer"

    def _validate(self) -> None:
        self._check(0 <= self.sparsity < 1, "sparsity", "must lie in [0, 1)")
        self._check(self.epoch >= 0, "epoch", "must be >= 0")


@dataclass
class LogConfig(_Section):
    """A progress line every ``every`` steps (0: none); TensorBoard and PNG curves when the
    ``tensorboard`` / ``matplotlib`` packages are importable."""

    _section: ClassVar[str] = "log"
    every: int = 50
    tensorboard: bool = True
    plot: bool = True

    def _validate(self) -> None:
        self._check(self.every >= 0, "every", "must be >= 0")


@dataclass
class Recipe(_Section):
    """A whole training run. ``out_dir`` is the run directory (None: write nothing);
    ``two_stage``: ReActNet's recipe, stage 1 with binary activations and real weights (the
    method's own first step when it declares one), stage 2 binary both, initialised from stage 1,
    ``epochs`` each; ``amp``: bf16 autocast on CUDA only; ``device``: ``auto`` (CUDA when
    available), ``cpu``, ``cuda``, ``cuda:1``, ..."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    regularizer: RegularizerConfig = field(default_factory=RegularizerConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    log: LogConfig = field(default_factory=LogConfig)
    epochs: int = 10
    seed: int = 0
    two_stage: bool = False
    out_dir: str | None = "runs/default"
    amp: bool = False
    device: str = "auto"
    version: int = RECIPE_VERSION

    def _validate(self) -> None:
        self._check(self.epochs >= 1, "epochs", "must be >= 1")
        self._check(self.device == "auto" or _is_device(self.device), "device", "must be 'auto' or a torch device")
        self._check(self.version == RECIPE_VERSION, "version", f"this onebit reads recipe version {RECIPE_VERSION}")
        self._check(all(m <= self.epochs for m in self.schedule.milestones), "epochs", "must cover schedule.milestones")
        self._check(self.prune.sparsity == 0 or self.prune.epoch < self.epochs, "prune.epoch", "must be < epochs")

    # ---- YAML
    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_yaml())

    @classmethod
    def from_yaml_str(cls, text: str) -> "Recipe":
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:  # not a ValueError: callers (the CLI) expect one for bad recipes
            raise ValueError(f"recipe is not valid YAML: {exc}") from None
        return cls.from_dict({} if data is None else data)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "Recipe":
        try:
            with open(path, encoding="utf-8") as f:
                return cls.from_yaml_str(f.read())
        except ValueError as exc:  # also UnicodeDecodeError: name the file
            raise ValueError(f"{os.fspath(path)}: {exc}") from None

    # ---- overrides
    @classmethod
    def keys(cls) -> list[str]:
        """Every settable dotted key; ``dict`` fields take any sub-key (``model.kwargs.<name>``)."""
        out: list[str] = []
        for name, tp in _field_types(cls).items():
            sub = _field_types(tp).items() if dataclasses.is_dataclass(tp) else [("", tp)]
            for child, child_tp in sub:
                dotted = f"{name}.{child}" if child else name
                out.append(f"{dotted}.<name>" if get_origin(child_tp) is dict else dotted)
        return sorted(out)

    def override(self, assignments: list[str] | tuple[str, ...]) -> "Recipe":
        """A new recipe with ``["a.b=value", ...]`` applied; values are coerced to the field types."""
        data = self.to_dict()
        for assignment in assignments:
            key, sep, text = assignment.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ValueError(f"override {assignment!r} must look like a.b=value")
            _assign(data, key, text)
        return Recipe.from_dict(data)


def _field_types(cls: type) -> dict[str, Any]:
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _assign(data: dict[str, Any], key: str, text: str) -> None:
    """Set dotted ``key`` of the nested recipe dict ``data`` from override text; unknown keys raise."""
    parts, node, tp = key.split("."), data, Recipe
    for depth, part in enumerate(parts):
        if dataclasses.is_dataclass(tp):
            fields_ = _field_types(tp)
            if part not in fields_:
                raise _unknown_key(key, Recipe.keys(), "recipe")
            tp = fields_[part]
        elif get_origin(tp) is dict or tp is Any:
            tp = Any
        else:
            raise _unknown_key(key, Recipe.keys(), "recipe")
        if depth == len(parts) - 1:
            if dataclasses.is_dataclass(tp):
                example = dataclasses.fields(tp)[0].name
                raise ValueError(f"{key!r} is a section; set one of its keys, e.g. {key}.{example}=...")
            node[part] = _parse_override_text(text, tp)
        else:
            if tp is Any and node.get(part) is None:
                node[part] = {}
            if not isinstance(node.get(part), dict):
                raise _unknown_key(key, Recipe.keys(), "recipe")
            node = node[part]


# --------------------------------------------------------------------------- built-in recipes

def _recipe_dir():
    return resources.files("onebit.train") / "recipes"


def list_recipes() -> list[str]:
    """Names of the base recipes shipped with onebit."""
    return sorted(p.name[: -len(".yaml")] for p in _recipe_dir().iterdir() if p.name.endswith(".yaml"))


def load_recipe(name_or_path: str | os.PathLike) -> Recipe:
    """A recipe from a YAML file path or the name of a shipped base recipe (``fashion_mnist_bnn``)."""
    path = os.fspath(name_or_path)
    if os.path.exists(path):
        return Recipe.from_yaml(path)
    if path.endswith((".yaml", ".yml")) or os.sep in path:
        raise FileNotFoundError(f"recipe file {path!r} does not exist; shipped recipes: {list_recipes()}")
    if path not in list_recipes():
        raise ValueError(f"unknown recipe {path!r}; shipped recipes: {list_recipes()} (or give a YAML path)")
    return Recipe.from_yaml_str((_recipe_dir() / f"{path}.yaml").read_text(encoding="utf-8"))
