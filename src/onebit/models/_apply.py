"""How a zoo model takes a method: block settings for block-based models, ``binarize_`` for plain stacks.

* Plain conv stacks (``cnn28``, ``vgg_small``, ``binary_alexnet``) are built in float and binarized by
  :func:`onebit.binarize_` — the method's quantizers (and Elastic-Link, through ``wrap_layer``) replace
  every Conv2d / Linear but the first and the last.
* Block-based models (ResNets, Bi-Real-18, ReActNet-18/A, QuickNet) build their binary part from the
  method's blocks (:mod:`onebit.nn.blocks`) with :func:`block_spec`; the real-valued stem, shortcuts and
  classifier stay ``nn.Conv2d`` / ``nn.Linear``. :func:`attach` then records the config on the model
  (``onebit.get_config``) through ``binarize_``, restricted to the stem conv and the classifier so the
  config's ``keep_first`` / ``keep_last`` (and overrides naming those two layers) still decide them.
  Per-layer ``overrides`` naming layers inside the blocks do not apply: the blocks follow the method.

A bare :class:`onebit.BinarizeConfig` (quantizers only) is turned into a Method with the default block
settings (:func:`as_method`), so the architecture supplies the shortcut.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from ..binarize import BinarizeConfig, binarize_
from ..methods import Method
from ..nn import BlockSpec

__all__ = ["activation", "as_method", "attach", "block_spec", "head_activation", "scaled"]

_CONFIG_FIELDS = ("input_quantizer", "weight_quantizer", "pad_value", "keep_first", "keep_last", "overrides", "method")


def as_method(config: BinarizeConfig) -> Method:
    """``config`` as a Method: itself, or a Method with its quantizer fields and default block settings."""
    if isinstance(config, Method):
        return config
    return Method(**{k: getattr(config, k) for k in _CONFIG_FIELDS})


def block_spec(method: Method, *, shortcut: str, downsample: str | None = None) -> BlockSpec:
    """The method's :class:`BlockSpec` for an architecture whose own shortcut is ``shortcut``.

    A method without shortcuts (``shortcut == "none"``: BNN, XNOR-Net, BNN+) takes the architecture's:
    a ResNet keeps its block residual (``"block"``, as IR-Net and the XNOR-Net ResNet-18 do), Bi-Real-18
    and ReActNet keep their per-conv shortcuts (``"per_conv"``). A method with a shortcut keeps its own.
    ``downsample`` (when given) is the architecture's fixed choice, e.g. option A in CIFAR ResNet-20.
    """
    spec = method.block_spec()
    changes = {}
    if spec.shortcut == "none":
        changes["shortcut"] = shortcut
    if downsample is not None:
        changes["downsample"] = downsample
    return dataclasses.replace(spec, **changes) if changes else spec


def head_activation(method: Method | None) -> nn.Module:
    """ReLU before global pooling when the method's recipe asks for it (Si-BNN's ``head_relu``), else Identity."""
    return nn.ReLU() if method is not None and method.recipe.get("head_relu") else nn.Identity()


def activation(binary: bool) -> nn.Module:
    """The non-linearity of a plain stack: ReLU in float, Hardtanh when the next layer binarizes its input.

    A ReLU right before a binarizer would make every input non-negative, i.e. sign(x) = +1 everywhere
    (sign(0) = +1, DESIGN.md section 3); BNN's Hardtanh keeps the sign and clips the gradient
    (Courbariaux et al. 2016).
    """
    return nn.Hardtanh() if binary else nn.ReLU()


def attach(model: nn.Module, config: BinarizeConfig, *, float_layers: tuple[str, ...]) -> nn.Module:
    """Record ``config`` on a block-built ``model`` (``onebit.get_config``); only the Conv2d / Linear layers
    named in ``float_layers`` (the stem conv and the classifier) are offered to ``binarize_``."""
    names = set(float_layers)
    missing = names - {n for n, _ in model.named_modules()}
    if missing:
        raise RuntimeError(f"attach: {type(model).__name__} has no layers {sorted(missing)}")
    return binarize_(model, config, filter_fn=lambda _module, name: name in names)


def scaled(channels: int, width_mult: float, multiple: int = 1) -> int:
    """``channels * width_mult`` rounded to a multiple of ``multiple`` (at least ``multiple``): the width
    multiplier of MobileNet (Howard et al., arXiv 1704.04861), for narrow CPU-sized variants."""
    if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) or width_mult <= 0:
        raise ValueError(f"width_mult must be a number > 0, got {width_mult!r}")
    return max(multiple, multiple * round(channels * width_mult / multiple))
