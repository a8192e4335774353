"""Optimizers for BNNs: parameter-group routing, Bop, learning-rate schedules, latent-weight clipping.

Latent binary weights are the ``weight`` of every :class:`onebit.nn.QuantizedLayerMixin` layer
that has a weight quantizer. Only their sign matters in the forward pass, so weight decay (which
shrinks them towards 0, where the sign flips on noise) is off for them unless asked for.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..binarize import get_config
from ..nn import QuantizedLayerMixin
from ._util import optional_import
from .recipe import OptimConfig, ScheduleConfig

__all__ = [
    "Bop",
    "binary_weights",
    "build_optimizer",
    "build_scheduler",
    "clip_latent_weights_",
    "latent_clip",
    "lr_multiplier",
    "param_groups",
]


def binary_weights(model: nn.Module) -> list[nn.Parameter]:
    """The latent binary weights of ``model``: ``weight`` of quantized layers with a weight quantizer."""
    return [m.weight for m in model.modules()
            if isinstance(m, QuantizedLayerMixin) and m.weight_quantizer is not None]


@torch.no_grad()
def clip_latent_weights_(model: nn.Module, bound: float = 1.0) -> None:
    """Clamp latent binary weights to [-bound, bound], so the clipped STE keeps passing gradients."""
    for w in binary_weights(model):
        w.clamp_(-bound, bound)


def latent_clip(model: nn.Module, cfg: OptimConfig) -> float | None:
    """The bound for :func:`clip_latent_weights_` after each step, or None: ``cfg.clip_latent_weights``,
    where ``"method"`` means the ``latent_clip`` of the model's method (1.0 for a plain BinarizeConfig)."""
    if cfg.clip_latent_weights != "method":
        return cfg.clip_latent_weights  # type: ignore[return-value]
    return getattr(get_config(model), "latent_clip", 1.0)


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict[str, Any]]:
    """Named parameter groups for the optimizer.

    With ``weight_decay_rule="onebit"``: ``binary`` (latent binary weights), ``weights`` (other
    >= 2-D tensors) and ``norm_bias`` (1-D: norm scales, biases, PReLU slopes, thresholds). Weight
    decay goes to ``weights`` always, to ``binary`` only with ``latent_weight_decay`` and to
    ``norm_bias`` only with ``norm_bias_weight_decay``. With Bop, ``binary`` is Bop's group (its
    ``lr`` is gamma). Any other rule is ``onebit.methods.param_groups``' (groups ``decay`` and
    ``no_decay``). Empty groups are dropped.
    """
    if cfg.weight_decay_rule != "onebit":
        return _method_groups(model, cfg)
    binary_ids = {id(p) for p in binary_weights(model)}
    groups: dict[str, list[nn.Parameter]] = {"binary": [], "weights": [], "norm_bias": []}
    for p in model.parameters():
        if p.requires_grad:
            groups["binary" if id(p) in binary_ids else ("weights" if p.ndim >= 2 else "norm_bias")].append(p)
    decay = {"binary": cfg.latent_weight_decay, "weights": True, "norm_bias": cfg.norm_bias_weight_decay}
    out = []
    for name, params in groups.items():
        if not params:
            continue
        group: dict[str, Any] = {"name": name, "params": params,
                                 "weight_decay": cfg.weight_decay if decay[name] else 0.0}
        if name == "binary" and cfg.name == "bop":
            group.update(bop=True, lr=cfg.bop_gamma, threshold=cfg.bop_threshold, weight_decay=0.0)
        out.append(group)
    return out


def _method_groups(model: nn.Module, cfg: OptimConfig) -> list[dict[str, Any]]:
    methods = optional_import("onebit.methods")
    if methods is None:
        raise ValueError(f"optim.weight_decay_rule={cfg.weight_decay_rule!r} needs onebit.methods; use 'onebit'")
    rule: Any = cfg.weight_decay_rule
    if rule == "method":
        rule = get_config(model)
        if not isinstance(rule, methods.Method):
            raise ValueError("optim.weight_decay_rule='method' needs a model binarized with an onebit.methods method")
    try:
        groups = methods.param_groups(model, rule, cfg.weight_decay)
    except ValueError as exc:
        raise ValueError(f"optim.weight_decay_rule: {exc} (or 'onebit', 'method')") from None
    for group in groups:
        group["name"] = "decay" if group["weight_decay"] > 0 else "no_decay"
    return groups


class Bop(torch.optim.Adam):
    """Bop (Helwegen et al., "Latent Weights Do Not Exist", NeurIPS 2019) for groups with ``bop=True``,
    Adam for the others.

    For a binary weight w with gradient g, Bop keeps an exponential moving average
    m <- (1 - gamma) m + gamma g and flips w <- -w when |m| > threshold and sign(m) = sign(w);
    w's magnitude never changes. The group's ``lr`` is gamma, so a schedule scales it too.
    """

    def __init__(self, params, lr: float = 1e-3, **adam_kwargs) -> None:
        super().__init__(params, lr=lr, **adam_kwargs)
        for group in self.param_groups:
            group.setdefault("bop", False)
            group.setdefault("threshold", 1e-8)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        stashed = []
        for group in self.param_groups:
            if not group["bop"]:
                continue
            gamma, threshold = group["lr"], group["threshold"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:  # "step" too: Adam's load_state_dict expects it in every state
                    state.update(step=torch.zeros(()), bop_momentum=torch.zeros_like(p))
                state["step"] += 1
                m = state["bop_momentum"]
                m.mul_(1 - gamma).add_(p.grad, alpha=gamma)
                flip = (m.abs() > threshold) & ((m >= 0) == (p >= 0))
                p.copy_(torch.where(flip, -p, p))
                stashed.append((p, p.grad))
                p.grad = None  # Adam below skips parameters without a gradient
        try:
            super().step()
        finally:
            for p, grad in stashed:
                p.grad = grad
        return loss


def build_optimizer(model: nn.Module, cfg: OptimConfig,
                    extra_params: Sequence[nn.Parameter] = ()) -> torch.optim.Optimizer:
    """The optimizer of ``cfg`` over :func:`param_groups` of ``model``, plus ``extra_params`` (e.g.
    a regularizer's trainable scales) in a group ``extra`` without weight decay."""
    groups = param_groups(model, cfg)
    if extra_params:
        groups.append({"name": "extra", "params": list(extra_params), "weight_decay": 0.0})
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.name == "bop":
        if not any(g.get("bop") for g in groups):
            warnings.warn("optim.name=bop but the model has no binary weights: Bop has nothing to flip",
                          UserWarning, stacklevel=2)
        return Bop(groups, lr=cfg.lr, betas=cfg.betas)
    raise ValueError(f"unknown optimizer {cfg.name!r}; valid: adam, adamw, sgd, bop")


def lr_multiplier(cfg: ScheduleConfig, steps_per_epoch: int, epochs: int) -> Callable[[int], float]:
    """The schedule as a function of the global step (0-based) -> factor on each group's base lr."""
    total = max(1, steps_per_epoch * epochs)
    warmup = min(total - 1, round(cfg.warmup_epochs * steps_per_epoch))

    def decay(t: float) -> float:  # t: progress after warm-up, in [0, 1]
        if cfg.name == "cosine":
            return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
        if cfg.name == "linear":
            return 1 - (1 - cfg.min_lr_ratio) * t
        return 1.0

    def onecycle(step: int) -> float:
        # torch.optim.lr_scheduler.OneCycleLR's shape: div_factor 25, final_div_factor 1e4, cos annealing.
        peak = float(warmup) if warmup > 0 else max(1.0, 0.3 * total - 1)
        start, end = 1 / 25, 1 / 25e4
        if step <= peak:
            return 1 + (start - 1) / 2 * (math.cos(math.pi * step / peak) + 1)
        t = min(1.0, (step - peak) / max(1.0, total - 1 - peak))
        return end + (1 - end) / 2 * (math.cos(math.pi * t) + 1)

    def multiplier(step: int) -> float:
        if cfg.name == "onecycle":
            return onecycle(step)
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if cfg.name == "step":
            epoch = step // max(1, steps_per_epoch)
            return cfg.gamma ** sum(1 for m in cfg.milestones if epoch >= m)
        return decay(min(1.0, (step - warmup) / max(1, total - warmup)))

    return multiplier


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, *, steps_per_epoch: int,
                    epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step LambdaLR of :func:`lr_multiplier` (its state dict holds numbers only)."""
    multiplier = lr_multiplier(cfg, steps_per_epoch, epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: multiplier(step))
