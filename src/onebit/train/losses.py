"""Training losses: cross-entropy, knowledge distillation, their mix, and regularizer terms."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..binarize import get_config
from ._util import optional_import
from .recipe import RegularizerConfig

__all__ = ["build_regularizer", "distillation_loss", "training_loss"]


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      temperature: float = 1.0) -> torch.Tensor:
    """T^2 * KL(softmax(t/T) || softmax(s/T)), averaged over the batch.

    This is ReActNet's distributional loss (the cross-entropy between the teacher's softmax and
    the student's log-softmax) minus the teacher's entropy, a constant: same gradient, and 0 when
    the student matches the teacher. The T^2 factor keeps gradient magnitudes comparable across T.
    """
    t = temperature
    student = F.log_softmax(student_logits.float() / t, dim=-1)
    teacher = F.log_softmax(teacher_logits.detach().float() / t, dim=-1)
    return F.kl_div(student, teacher, reduction="batchmean", log_target=True) * (t * t)


def training_loss(logits: torch.Tensor, targets: torch.Tensor, teacher_logits: torch.Tensor | None = None, *,
                  alpha: float = 1.0, temperature: float = 1.0) -> torch.Tensor:
    """Cross-entropy, or ``alpha * distillation + (1 - alpha) * cross-entropy`` given teacher logits."""
    ce = F.cross_entropy(logits.float(), targets)
    if teacher_logits is None:
        return ce
    kd = distillation_loss(logits, teacher_logits, temperature)
    if alpha >= 1.0:
        return kd
    return alpha * kd + (1.0 - alpha) * ce


def build_regularizer(model: nn.Module, cfg: RegularizerConfig) -> nn.Module | None:
    """The loss terms of ``model``: its method's ``regularizers`` plus the recipe's term (which
    replaces a method term of the same name), as ``onebit.regularizers.build_regularizers`` builds
    them; None when there are none. Use as ``total = reg(task_loss)``; train ``reg.parameters()`` too."""
    spec = dict(getattr(get_config(model), "regularizers", None) or {})
    if cfg.name is not None:
        spec[cfg.name] = dict(cfg.options)
    if not spec:
        return None
    regularizers = optional_import("onebit.regularizers")
    if regularizers is None:
        raise ValueError(f"regularizers {sorted(spec)} need onebit.regularizers, which is not available here")
    return regularizers.build_regularizers(spec, model)
