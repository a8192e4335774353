"""Training: typed recipes (YAML + ``--set`` overrides) and a plain-torch ``fit`` loop with BNN
practice built in (latent-weight clipping, no weight decay on latent binary weights, flip ratio,
distillation, the methods' regularizers, two-stage training, Bop), resumable checkpoints, and
DDP under torchrun.

>>> from onebit import train
>>> recipe = train.load_recipe("digits_bnn").override(["epochs=2"])
>>> result = train.train_recipe(recipe)                      # doctest: +SKIP
>>> result = train.fit(model, train_loader, val_loader, recipe)  # doctest: +SKIP
"""

from .build import BUILTIN_MODELS, binarized_model, build_loaders, build_model, load_trained_model, resolve_method
from .fit import Callback, FitResult, TrainState, evaluate, fit, seed_everything
from .losses import build_regularizer, distillation_loss, training_loss
from .optim import (
    Bop,
    binary_weights,
    build_optimizer,
    build_scheduler,
    clip_latent_weights_,
    latent_clip,
    param_groups,
)
from .recipe import (
    DataConfig,
    DistillConfig,
    LogConfig,
    ModelConfig,
    OptimConfig,
    Recipe,
    RegularizerConfig,
    ScheduleConfig,
    list_recipes,
    load_recipe,
)
from .run import train_recipe

__all__ = [
    "BUILTIN_MODELS",
    "Bop",
    "Callback",
    "DataConfig",
    "DistillConfig",
    "FitResult",
    "LogConfig",
    "ModelConfig",
    "OptimConfig",
    "Recipe",
    "RegularizerConfig",
    "ScheduleConfig",
    "TrainState",
    "binarized_model",
    "binary_weights",
    "build_loaders",
    "build_model",
    "build_optimizer",
    "build_regularizer",
    "build_scheduler",
    "clip_latent_weights_",
    "distillation_loss",
    "evaluate",
    "fit",
    "latent_clip",
    "list_recipes",
    "load_recipe",
    "load_trained_model",
    "param_groups",
    "resolve_method",
    "seed_everything",
    "train_recipe",
    "training_loss",
]
