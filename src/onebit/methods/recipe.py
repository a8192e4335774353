"""Training-recipe helpers shared by methods: weight-decay parameter groups and latent-weight clipping."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..nn import LearnableBias, QuantizedLayerMixin, RPReLU
from ..quantizers import RSign
from ..regularizers import binary_layers
from .base import Method

__all__ = ["WEIGHT_DECAY_RULES", "clip_latent_weights_", "param_groups"]

#: all: every parameter; none: no parameter; all_but_thresholds: every parameter except those of the
#: activation quantizers (Si-BNN's (s, b)); reactnet: conv weights plus the RSign/RPReLU shifts (what
#: the authors' "4-D or 'conv' in the name" rule selects), never BN, PReLU slopes, FC or hyper-heads.
WEIGHT_DECAY_RULES = ("all", "none", "all_but_thresholds", "reactnet")


def _decayed(module: nn.Module, pname: str, rule: str, activation_quantizer_params: set[int], p: nn.Parameter) -> bool:
    if rule == "all":
        return True
    if rule == "none":
        return False
    if rule == "all_but_thresholds":
        return id(p) not in activation_quantizer_params
    if isinstance(module, nn.Conv2d) and pname == "weight":
        return True
    if isinstance(module, (RSign, LearnableBias)):
        return True
    return isinstance(module, RPReLU) and pname in ("shift_in", "shift_out")


def param_groups(model: nn.Module, rule: str | Method = "all", weight_decay: float = 0.0) -> list[dict[str, Any]]:
    """Optimizer parameter groups: ``[{"params": decayed, "weight_decay": wd}, {"params": rest, "weight_decay": 0}]``.

    ``rule`` is one of :data:`WEIGHT_DECAY_RULES` or a Method (its ``recipe["weight_decay_rule"]``,
    default "all"). Empty groups are left out.
    """
    if isinstance(rule, Method):
        rule = rule.recipe.get("weight_decay_rule", "all")
    if rule not in WEIGHT_DECAY_RULES:
        raise ValueError(f"weight-decay rule must be one of {list(WEIGHT_DECAY_RULES)}, got {rule!r}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    act_params = {id(p) for m in model.modules() if isinstance(m, QuantizedLayerMixin) and m.input_quantizer is not None
                  for p in m.input_quantizer.parameters()}
    decay, rest, seen = [], [], set()
    for module in model.modules():
        for pname, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            (decay if _decayed(module, pname, rule, act_params, p) else rest).append(p)
    groups = [{"params": decay, "weight_decay": float(weight_decay)}, {"params": rest, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


@torch.no_grad()
def clip_latent_weights_(model: nn.Module, bound: float = 1.0) -> None:
    """Clamp the latent weights of every binary layer to [-bound, bound] (BNN, Si-BNN: 1; SBNN: 1.5)."""
    if not bound > 0:
        raise ValueError(f"bound must be > 0, got {bound}")
    for _, layer in binary_layers(model):
        layer.weight.clamp_(-bound, bound)
