"""``train_recipe``: everything a recipe describes, from data and model to a trained run directory.

With ``two_stage`` (ReActNet) it trains twice: stage 1 (``out_dir/stage1``) with binary
activations and real weights (which, being real, get weight decay), stage 2 (``out_dir/stage2``)
with binary activations and weights, starting from stage 1's final weights. Resuming picks up
whichever stage was running.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

from torch import nn

from .build import binarized_model, build_loaders, load_trained_model
from .distributed import distributed
from .fit import Callback, FitResult, fit, seed_everything
from .recipe import Recipe

__all__ = ["load_stage1_weights", "train_recipe"]


def load_stage1_weights(stage2: nn.Module, stage1: nn.Module) -> None:
    """Copy stage 1's parameters and buffers into the stage-2 model; only state that stage 2 adds
    (its weight quantizers') may be missing."""
    result = stage2.load_state_dict(stage1.state_dict(), strict=False)
    missing = [k for k in result.missing_keys if ".weight_quantizer." not in f".{k}"]
    if result.unexpected_keys or missing:
        raise ValueError(f"stage 1 and stage 2 models differ: missing {missing}, unexpected {result.unexpected_keys}")


def _stage(recipe: Recipe, name: str) -> Recipe:
    out_dir = None if recipe.out_dir is None else os.path.join(recipe.out_dir, name)
    return dataclasses.replace(recipe, out_dir=out_dir)


def train_recipe(recipe: Recipe, *, resume: bool = False, callbacks: Sequence[Callback] = ()) -> FitResult:
    """Build the recipe's loaders, model (binarized with its method) and teacher, then :func:`fit`.

    Returns the result of the last stage. Under torchrun the process group spans both stages.
    """
    with distributed(recipe.device) as info:
        seed_everything(recipe.seed)
        train_loader, val_loader = build_loaders(recipe)
        teacher = load_trained_model(recipe.distill.teacher)[0] if recipe.distill.teacher else None
        if not recipe.two_stage:
            model = binarized_model(recipe.model)
            return fit(model, train_loader, val_loader, recipe, teacher=teacher, callbacks=callbacks, resume=resume)
        if recipe.out_dir and info.is_main:
            os.makedirs(recipe.out_dir, exist_ok=True)
            recipe.save(os.path.join(recipe.out_dir, "recipe.yaml"))
        stage1 = binarized_model(recipe.model, stage1=True)
        fit(stage1, train_loader, val_loader, _stage(recipe, "stage1"), teacher=teacher, callbacks=callbacks,
            resume=resume)
        stage2 = binarized_model(recipe.model)
        load_stage1_weights(stage2, stage1)
        return fit(stage2, train_loader, val_loader, _stage(recipe, "stage2"), teacher=teacher,
                   callbacks=callbacks, resume=resume)
