"""Turn recipe sections into objects: models (zoo or built-in), method configs, datasets, loaders.

The model zoo (``onebit.models``), the methods (``onebit.methods``) and the dataset loaders
(``onebit.data``) are imported lazily; when one is missing, only what needs it fails, with a
message that says so.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from ..binarize import BinarizeConfig, binarize_
from ..checkpoint import load_checkpoint
from ..sparsity import restore_masks_
from ._util import optional_import
from .recipe import DataConfig, ModelConfig, Recipe

__all__ = [
    "BUILTIN_MODELS",
    "build_dataset",
    "build_loaders",
    "build_model",
    "build_val_loader",
    "binarized_model",
    "load_trained_model",
    "resolve_method",
    "small_cnn",
    "stage1_config",
    "synthetic_dataset",
]


# --------------------------------------------------------------------------- models

def small_cnn(num_classes: int = 10, in_chans: int = 1, width: int = 32) -> nn.Sequential:
    """A compact CNN for small images (8x8 and up): a float stem, three conv-BN-pool blocks,
    global average pooling, a hidden FC and a float classifier. ``binarize_`` with its defaults
    makes everything but the stem and the classifier binary."""

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.MaxPool2d(2), nn.Hardtanh()]

    w = width
    return nn.Sequential(
        nn.Conv2d(in_chans, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.Hardtanh(),
        *block(w, 2 * w), *block(2 * w, 4 * w), *block(4 * w, 4 * w),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4 * w, 8 * w, bias=False), nn.BatchNorm1d(8 * w), nn.Hardtanh(),
        nn.Linear(8 * w, num_classes),
    )


#: models available without the zoo: name -> fn(num_classes, in_chans, **kwargs)
BUILTIN_MODELS: dict[str, Callable[..., nn.Module]] = {"small_cnn": small_cnn}


def _zoo_names(zoo: Any) -> list[str] | None:
    for attr in ("list_models", "list"):
        if callable(getattr(zoo, attr, None)):
            return list(getattr(zoo, attr)())
    return None


def build_model(cfg: ModelConfig, *, method: BinarizeConfig | None = None) -> nn.Module:
    """The recipe's model, float (``method=None``) or binarized with ``method``.

    A zoo model (``onebit.models``) is built by ``onebit.models.create(name, ..., method=method)``, which
    uses the method's blocks where the architecture has them; a built-in one is built in float and then
    binarized with ``binarize_``. Either way ``get_config(model)`` is ``method``, and building again with the
    same config gives the same structure (what :func:`load_trained_model` relies on).
    """
    zoo = optional_import("onebit.models")
    zoo_names = _zoo_names(zoo) if zoo is not None else None
    if zoo is not None and hasattr(zoo, "create"):
        known = cfg.name in zoo_names if zoo_names is not None else cfg.name not in BUILTIN_MODELS
        if known:  # a zoo without a listing gets every non-built-in name (its own error lists valid ones)
            return zoo.create(cfg.name, num_classes=cfg.num_classes, in_chans=cfg.in_chans, method=method,
                              **cfg.kwargs)
    if cfg.name in BUILTIN_MODELS:
        model = BUILTIN_MODELS[cfg.name](num_classes=cfg.num_classes, in_chans=cfg.in_chans, **cfg.kwargs)
        return model if method is None else binarize_(model, method)
    zoo_text = "onebit.models is not available" if zoo is None else f"onebit.models has {zoo_names or '?'}"
    raise ValueError(f"unknown model {cfg.name!r}: {zoo_text}; built-in: {sorted(BUILTIN_MODELS)}")


def resolve_method(spec: str | list | dict | None) -> BinarizeConfig | None:
    """A BinarizeConfig from a method name (``onebit.methods.get``), a list of names
    (``onebit.methods.combine``: a base then modifiers), an inline config mapping, or None."""
    if spec is None:
        return None
    if isinstance(spec, dict):
        return BinarizeConfig.from_dict(spec)
    methods = optional_import("onebit.methods")
    if methods is None:
        raise ValueError(f"model.method={spec!r} needs onebit.methods, which is not available here; "
                         "give an inline BinarizeConfig mapping or null instead")
    return methods.combine(*spec) if isinstance(spec, list) else methods.get(spec)


def stage1_config(config: BinarizeConfig) -> BinarizeConfig:
    """Stage 1 of the two-stage recipe: ``config`` with binary activations and real weights.

    A method's own first step (``Method.stages()``) when it declares one, else every weight
    quantizer removed; weight regularizers and latent clipping are dropped (no binary weights)."""
    stages = config.stages() if hasattr(config, "stages") else []
    if len(stages) == 2:
        config = stages[0]
    else:
        overrides = {k: {**v, "weight_quantizer": None} if "weight_quantizer" in v else dict(v)
                     for k, v in config.overrides.items()}
        config = dataclasses.replace(config, weight_quantizer=None, overrides=overrides)
    changes = {k: v for k, v in (("regularizers", {}), ("latent_clip", None)) if hasattr(config, k)}
    return dataclasses.replace(config, **changes) if changes else config


def binarized_model(cfg: ModelConfig, *, stage1: bool = False) -> nn.Module:
    """:func:`build_model` with the recipe's method (:func:`stage1_config` of it when ``stage1``)."""
    config = resolve_method(cfg.method)
    if config is not None and stage1:
        config = stage1_config(config)
    return build_model(cfg, method=config)


def load_trained_model(path: str | os.PathLike) -> tuple[nn.Module, Recipe, dict[str, Any]]:
    """Rebuild the model of an ``onebit.train`` checkpoint (its recipe and binarize config) with
    its weights; returns ``(model, recipe, checkpoint)``."""
    ckpt = load_checkpoint(path)
    text = ckpt["extra"].get("recipe")
    if not isinstance(text, str):
        raise ValueError(f"{os.fspath(path)!r} has no recipe: it was not written by onebit.train")
    recipe = Recipe.from_yaml_str(text)
    model = build_model(recipe.model, method=ckpt["config"])
    restore_masks_(model, ckpt["state_dict"])  # a run with recipe.prune: its layers carry masks
    model.load_state_dict(ckpt["state_dict"])
    return model, recipe, ckpt


# --------------------------------------------------------------------------- data

def synthetic_dataset(split: str, *, num_classes: int = 10, in_chans: int = 1, size: int = 8,
                      n: int | None = None, noise: float = 0.8, seed: int = 0) -> TensorDataset:
    """Class prototypes (fixed by ``seed``) plus Gaussian noise (different per split): a learnable
    task in seconds, for tests and smoke runs. ``n`` defaults to 512 (train) / 256 (other splits)."""
    proto_gen = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(num_classes, in_chans, size, size, generator=proto_gen).sign()
    gen = torch.Generator().manual_seed(seed + 1 + (0 if split == "train" else 1_000_003))
    n = n if n is not None else (512 if split == "train" else 256)
    labels = torch.arange(n) % num_classes
    labels = labels[torch.randperm(n, generator=gen)]
    images = prototypes[labels] + noise * torch.randn(n, in_chans, size, size, generator=gen)
    return TensorDataset(images.float(), labels.long())


class TransformedDataset(Dataset):
    """``(transform(x), y)`` for every sample ``(x, y)`` of ``dataset``."""

    def __init__(self, dataset: Dataset, transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int):
        x, y = self.dataset[index]
        return self.transform(x), y


def _augmentation(augment: str, height: int, width: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Random crops after 2-pixel zero padding, plus random horizontal flips for ``shift_flip``
    (``onebit.data.transforms``, drawing from torch's global RNG, which checkpoints restore)."""
    transforms = optional_import("onebit.data.transforms")
    if transforms is None:
        raise ValueError(f"data.augment={augment!r} needs onebit.data.transforms, which is not available here")
    steps = [transforms.RandomCrop((height, width), padding=2)]
    if augment == "shift_flip":
        steps.append(transforms.RandomHorizontalFlip())
    return transforms.Compose(steps)


def _dataset(cfg: DataConfig, split: str, model: ModelConfig) -> Dataset:
    if cfg.name == "synthetic":
        kwargs = {"num_classes": model.num_classes, "in_chans": model.in_chans, **cfg.kwargs}
        return synthetic_dataset(split, **kwargs)
    data = optional_import("onebit.data")
    if data is None or not hasattr(data, "get"):
        raise ValueError(f"dataset {cfg.name!r} needs onebit.data, which is not available here; built-in: synthetic")
    kwargs = dict(cfg.kwargs)
    if cfg.root is not None:
        kwargs["root"] = cfg.root
    return data.get(cfg.name, split, **kwargs)


def build_dataset(recipe: Recipe, part: str) -> Dataset:
    """The recipe's ``"train"`` or ``"val"`` (``data.val_split``) dataset: ``limit`` / ``val_limit``
    keep the first N samples; ``augment`` wraps the training set."""
    cfg = recipe.data
    if part not in ("train", "val"):
        raise ValueError(f"part must be 'train' or 'val', got {part!r}")
    dataset = _dataset(cfg, "train" if part == "train" else cfg.val_split, recipe.model)
    limit = cfg.limit if part == "train" else cfg.val_limit
    if limit is not None:
        dataset = Subset(dataset, range(min(limit, len(dataset))))  # type: ignore[arg-type]
    if part == "train" and cfg.augment != "none":
        height, width = dataset[0][0].shape[-2:]
        dataset = TransformedDataset(dataset, _augmentation(cfg.augment, height, width))
    return dataset


def _loader_options(cfg: DataConfig) -> dict[str, Any]:
    return {"num_workers": cfg.num_workers, "persistent_workers": cfg.num_workers > 0,
            "pin_memory": torch.cuda.is_available()}


def build_val_loader(recipe: Recipe) -> DataLoader:
    """The validation loader alone, in dataset order."""
    cfg = recipe.data
    return DataLoader(build_dataset(recipe, "val"), batch_size=cfg.val_batch_size, shuffle=False,
                      **_loader_options(cfg))


def build_loaders(recipe: Recipe) -> tuple[DataLoader, DataLoader]:
    """Shuffled training and ordered validation loaders (``fit`` shards them under torchrun).

    Training drops the last partial batch when there is at least one full one (a batch of one
    sample breaks BatchNorm). Shuffling draws from torch's global RNG, which checkpoints restore.
    """
    cfg = recipe.data
    train = build_dataset(recipe, "train")
    train_loader = DataLoader(train, batch_size=cfg.batch_size, shuffle=True,  # type: ignore[arg-type]
                              drop_last=len(train) >= cfg.batch_size, **_loader_options(cfg))  # type: ignore[arg-type]
    return train_loader, build_val_loader(recipe)
