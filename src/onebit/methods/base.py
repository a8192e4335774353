"""``Method``: a binarization method as a configuration of shared quantizers, layers and blocks.

A Method *is* a :class:`onebit.BinarizeConfig` (so ``binarize_(model, method)`` works and it round-trips
through JSON and checkpoints) plus the block-level settings the model zoo uses (shortcut, activation,
normalisation placement, Elastic-Link, dynamic thresholds), training hints (latent-weight clipping,
regularizers, a recipe) and the paper it comes from.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..binarize import BinarizeConfig
from ..nn import BinaryConv2d, BlockSpec, ElasticLink
from ..regularizers import RegularizerSet, binary_layers, build_regularizers, check_regularizers

__all__ = ["ELASTIC_LINK_OPTIONS", "Method"]

#: keys of ``Method.elastic_link``: ElasticLink options plus ``where`` ("all" convs or only "1x1" ones)
ELASTIC_LINK_OPTIONS = ("gate", "gate_init", "squeeze", "expand", "where")
_WHERE = ("all", "1x1")
#: fields whose dicts a modifier merges into its base instead of replacing them
_MERGED = ("regularizers", "recipe")


@dataclass
class Method(BinarizeConfig):
    """A binarization method (see ``docs/methods.md``).

    Inherited from BinarizeConfig: ``input_quantizer``, ``weight_quantizer``, ``pad_value``,
    ``keep_first``, ``keep_last``, ``overrides``, ``method`` (the method's name), ``version``.

    Attributes:
        paper: the citation.
        shortcut, downsample, activation, activation_options, pre_norm, post_norm: block settings
            (:class:`onebit.nn.BlockSpec`).
        elastic_link: None (off) or options for :class:`onebit.nn.ElasticLink` plus ``where``
            ("all" binary convs or only "1x1" ones, for ``binarize_``); ``True`` means ``{}``.
        latent_clip: clamp latent weights of binary layers to [-c, c] after every optimizer step
            (:meth:`after_step`), or None.
        regularizers: ``{name: options}`` loss terms (:mod:`onebit.regularizers`): "bnn+",
            "expected_connections".
        recipe: JSON-safe training hints (optimizer, lr, schedule, epochs, weight-decay rule, two-step
            training, distillation, ...), see ``docs/methods.md``.
        modifies: for methods that modify a base method (DyBNN, Elastic-Link, SBNN, BNN+), the fields
            they change; :func:`onebit.methods.combine` applies them to another base. Empty for
            complete methods.
    """

    config_type: ClassVar[str] = "method"

    paper: str = ""
    shortcut: str = "none"
    downsample: str = "avgpool_conv"
    activation: str = "none"
    activation_options: dict[str, Any] = field(default_factory=dict)
    pre_norm: bool = False
    post_norm: bool = True
    elastic_link: Any = None
    latent_clip: float | None = None
    regularizers: dict[str, dict[str, Any]] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    modifies: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.elastic_link = _normalize_elastic_link(self.elastic_link)
        self.block_spec()  # validates shortcut / downsample / activation
        if self.latent_clip is not None:
            if not (isinstance(self.latent_clip, (int, float)) and self.latent_clip > 0):
                raise ValueError(f"latent_clip must be None or a number > 0, got {self.latent_clip!r}")
            self.latent_clip = float(self.latent_clip)
        check_regularizers(self.regularizers)
        for what in ("recipe", "activation_options", "modifies"):
            value = getattr(self, what)
            if not isinstance(value, dict):
                raise ValueError(f"{what} must be a dict, got {type(value).__name__}")
            try:
                json.dumps(value)
            except TypeError as exc:
                raise ValueError(f"{what} must be JSON-serializable: {exc}") from None
        unknown = set(self.modifies) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"modifies names unknown fields {sorted(unknown)}")

    # ---- derived views ------------------------------------------------------------------------

    @property
    def name(self) -> str | None:
        """The method's name (the ``method`` field)."""
        return self.method

    @property
    def dynamic_threshold(self) -> bool:
        """True when activations are binarized with input-dependent thresholds (DySign, DyBNN)."""
        spec = self.input_quantizer
        return (spec if isinstance(spec, str) else (spec or {}).get("name")) == "dysign"

    def block_spec(self) -> BlockSpec:
        """The block-level settings for :mod:`onebit.nn.blocks`."""
        link = None if self.elastic_link is None else {k: v for k, v in self.elastic_link.items() if k != "where"}
        return BlockSpec(self.input_quantizer, self.weight_quantizer, self.pad_value, self.shortcut,
                         self.downsample, self.activation, dict(self.activation_options), self.pre_norm,
                         self.post_norm, link)

    def with_(self, **changes: Any) -> "Method":
        """A copy with ``changes`` applied and validated; unknown names raise ValueError listing the valid ones."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown Method fields {sorted(unknown)}; valid: {sorted(names)}")
        return dataclasses.replace(self, **changes)

    def merged_changes(self, changes: dict[str, Any]) -> dict[str, Any]:
        """``changes`` with the dict fields in ``_MERGED`` merged into this method's (later keys win)."""
        return {k: ({**getattr(self, k), **v} if k in _MERGED else v) for k, v in changes.items()}

    def modified_by(self, name: str, paper: str, modifies: dict[str, Any]) -> "Method":
        """The modifier method ``name``: this base with ``modifies`` applied (dicts in ``_MERGED`` merged)."""
        return self.with_(**self.merged_changes(modifies), method=name, paper=paper, modifies=dict(modifies))

    def stages(self) -> list["Method"]:
        """The training stages: [binary activations + real weights, full method] for two-step recipes
        (ReActNet, DyBNN), else [self]."""
        if not self.recipe.get("two_step"):
            return [self]
        return [self.with_(weight_quantizer=None, latent_clip=None, method=f"{self.method}:step1"), self]

    # ---- what binarize_ and training use --------------------------------------------------------

    def wrap_layer(self, name: str, layer: nn.Module) -> nn.Module:
        """Called by ``binarize_``: put an Elastic-Link around binary convs when the method has one.

        With no BatchNorm inside the wrapper, the link is added to the conv output before the model's
        own BatchNorm (in onebit blocks it is added after the BN, as in methods.md 7.2).
        """
        if self.elastic_link is None or not isinstance(layer, BinaryConv2d):
            return layer
        if self.elastic_link.get("where", "all") == "1x1" and tuple(layer.kernel_size) != (1, 1):
            return layer
        options = {k: v for k, v in self.elastic_link.items() if k != "where"}
        return ElasticLink.around(layer, **options)

    def regularizer(self, model: nn.Module) -> RegularizerSet | None:
        """The method's loss terms over ``model`` (call ``total = reg(task_loss)``), or None. Add its
        ``parameters()`` to the optimizer (BNN+ alphas for layers without their own scale)."""
        return build_regularizers(self.regularizers, model) if self.regularizers else None

    @torch.no_grad()
    def after_step(self, model: nn.Module) -> None:
        """Call after every optimizer step: clamps the latent weights of binary layers to [-c, c]."""
        if self.latent_clip is None:
            return
        for _, layer in binary_layers(model):
            layer.weight.clamp_(-self.latent_clip, self.latent_clip)


def _normalize_elastic_link(value: Any) -> dict[str, Any] | None:
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"elastic_link must be None, a bool or a dict of options, got {type(value).__name__}")
    unknown = set(value) - set(ELASTIC_LINK_OPTIONS)
    if unknown:
        raise ValueError(f"unknown elastic_link options {sorted(unknown)}; valid: {list(ELASTIC_LINK_OPTIONS)}")
    if value.get("where", "all") not in _WHERE:
        raise ValueError(f"elastic_link where must be one of {list(_WHERE)}, got {value['where']!r}")
    options = {k: v for k, v in value.items() if k != "where"}
    try:  # validate the options by building a link once
        ElasticLink(nn.Identity(), 1, 1, **options)
    except TypeError as exc:
        raise ValueError(f"bad elastic_link options: {exc}") from None
    return dict(value)
