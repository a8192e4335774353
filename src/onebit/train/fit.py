"""``fit``: a plain-torch training loop for BNNs, and ``evaluate``.

Per step: forward (bf16 autocast on CUDA when ``recipe.amp``), cross-entropy or distillation
loss plus an optional regularizer, backward, optimizer and per-step scheduler, then latent
binary weights clamped to [-c, c]. Per epoch: validation, the flip ratio of binary weights,
``last.pt`` (everything needed to resume: model, optimizer, scheduler, RNG states, history),
``best.pt`` when validation accuracy improves, ``metrics.csv`` and optional TensorBoard / PNG
curves. Checkpoints are written atomically, so a SIGKILL loses at most the running epoch.

Launched by torchrun, ``fit`` trains with DistributedDataParallel on sharded loaders and only
rank 0 writes files or prints.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from ..binarize import get_config
from ..checkpoint import load_checkpoint, save_checkpoint
from ..sparsity import MaskedWeight, magnitude_prune_, restore_masks_
from ._util import atomic_write
from .distributed import DistInfo, all_gather_objects, all_reduce_sum, distributed, shard_loader
from .losses import build_regularizer, training_loss
from .metrics import FlipTracker, MetricsWriter, Progress
from .optim import binary_weights, build_optimizer, build_scheduler, clip_latent_weights_, latent_clip
from .recipe import Recipe, load_recipe

__all__ = ["Callback", "FitResult", "TrainState", "as_recipe", "evaluate", "fit", "seed_everything"]


@dataclass
class TrainState:
    """What callbacks see. ``epoch`` counts completed epochs; set ``stop = True`` to end training
    after the current epoch (in distributed runs, do it on every rank)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    recipe: Recipe
    info: DistInfo
    epoch: int = 0
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val_acc: float | None = None
    best_epoch: int | None = None
    stop: bool = False


class Callback:
    """Hooks called on every rank; override any of them."""

    def on_train_start(self, state: TrainState) -> None: ...

    def on_epoch_end(self, state: TrainState) -> None: ...

    def on_train_end(self, state: TrainState) -> None: ...


@dataclass
class FitResult:
    history: list[dict[str, Any]]
    best_val_acc: float | None
    best_epoch: int | None
    out_dir: str | None


def as_recipe(recipe: Recipe | Mapping[str, Any] | str | os.PathLike | None) -> Recipe:
    """A Recipe from a Recipe, a nested mapping (as in YAML), a recipe name or path, or None (defaults)."""
    if recipe is None:
        return Recipe()
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, Mapping):
        return Recipe.from_dict(dict(recipe))
    return load_recipe(recipe)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Global RNG states in a form ``torch.load(weights_only=True)`` accepts."""
    state = np.random.get_state(legacy=False)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": {**state, "state": {"key": torch.from_numpy(state["state"]["key"].astype(np.int64)),
                                     "pos": int(state["state"]["pos"])}},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = dict(state["numpy"])
    numpy_state["state"] = {"key": state["numpy"]["state"]["key"].numpy().astype(np.uint32),
                            "pos": state["numpy"]["state"]["pos"]}
    np.random.set_state(numpy_state)


def _autocast(enabled: bool):
    return torch.autocast("cuda", dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, *, device: torch.device | str | None = None,
             amp: bool = False) -> dict[str, float]:
    """``{"accuracy", "loss", "count"}`` of ``model`` (in eval mode) over ``loader``: mean
    cross-entropy and top-1 accuracy, summed over all ranks in distributed runs."""
    model = model.module if isinstance(model, DistributedDataParallel) else model
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
    was_training = model.training
    model.eval()
    try:
        with _autocast(amp and torch.device(device).type == "cuda"):
            for x, y in loader:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                logits = model(x).float()
                sums[0] += F.cross_entropy(logits, y, reduction="sum")
                sums[1] += (logits.argmax(dim=1) == y).sum()
                sums[2] += y.numel()
    finally:
        model.train(was_training)
    loss_sum, correct, count = all_reduce_sum(sums).tolist()
    if count == 0:
        raise ValueError("evaluate: the loader yielded no samples")
    return {"accuracy": correct / count, "loss": loss_sum / count, "count": int(count)}


def fit(model: nn.Module, train_loader: DataLoader, val_loader: DataLoader | None = None,
        recipe_or_options: Recipe | Mapping[str, Any] | str | None = None, *, teacher: nn.Module | None = None,
        callbacks: Sequence[Callback] = (), resume: bool = False) -> FitResult:
    """Train ``model`` in place with the recipe's optimizer, schedule, losses and logging.

    ``recipe_or_options``: a :class:`Recipe`, a nested mapping of recipe values, or a recipe name or
    path (only the ``optim``, ``schedule``, ``distill``, ``regularizer``, ``log``, ``epochs``,
    ``seed``, ``out_dir``, ``amp`` and ``device`` parts matter here: the model and loaders are given).
    ``teacher``: a frozen model to distil from (loaded from ``recipe.distill.teacher`` when None).
    ``resume``: continue from ``out_dir/last.pt`` when it exists. Returns the per-epoch history.
    """
    recipe = as_recipe(recipe_or_options)
    with distributed(recipe.device) as info:
        trainer = _Trainer(model, train_loader, val_loader, recipe, info, teacher, callbacks)
        try:
            if resume:
                trainer.resume()
            return trainer.run()
        finally:
            # Drop the DDP wrapper now, while the process group lives: its reducer holds gloo work objects,
            # and if a reference cycle kept it until interpreter exit, their destruction there can abort
            # the process ("terminate called without an active exception" after training finished).
            trainer.net = trainer.model


class _Trainer:
    def __init__(self, model: nn.Module, train_loader: DataLoader, val_loader: DataLoader | None, recipe: Recipe,
                 info: DistInfo, teacher: nn.Module | None, callbacks: Sequence[Callback]) -> None:
        self.recipe, self.info, self.callbacks = recipe, info, list(callbacks)
        seed_everything(recipe.seed + info.rank)
        self.model = model.to(info.device)
        self.net: nn.Module = self.model
        if info.enabled:
            ids = [info.device] if info.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        self.teacher = self._prepare_teacher(teacher)
        self.train_loader = shard_loader(train_loader, info, train=True, seed=recipe.seed)
        self.val_loader = shard_loader(val_loader, info, train=False, seed=recipe.seed)
        if len(self.train_loader) == 0:
            raise ValueError("the training loader yields no batches (fewer samples than batch_size with drop_last?)")
        self.regularizer = build_regularizer(self.model, recipe.regularizer)
        extra_params = []
        if self.regularizer is not None:
            extra_params = list(self.regularizer.to(info.device).parameters())
        optimizer = build_optimizer(self.model, recipe.optim, extra_params)
        scheduler = build_scheduler(optimizer, recipe.schedule, steps_per_epoch=len(self.train_loader),
                                    epochs=recipe.epochs)
        self.state = TrainState(self.model, optimizer, scheduler, recipe, info)
        self.clip = latent_clip(self.model, recipe.optim)
        self.flips = FlipTracker(self.model)
        self.amp = recipe.amp and info.device.type == "cuda"
        if recipe.amp and not self.amp:
            self._print(f"amp: bf16 autocast is for CUDA only; training in float32 on {info.device}")
        self.out_dir = recipe.out_dir if info.is_main else None
        if recipe.optim.clip_latent_weights is None and recipe.optim.name != "bop" and binary_weights(self.model):
            warnings.warn("latent binary weights are not clipped (optim.clip_latent_weights=null): weights that "
                          "leave the STE's clip range stop receiving gradients", UserWarning, stacklevel=3)

    def _prepare_teacher(self, teacher: nn.Module | None) -> nn.Module | None:
        if teacher is None and self.recipe.distill.teacher:
            from .build import load_trained_model  # build imports the optional zoo lazily

            teacher = load_trained_model(self.recipe.distill.teacher)[0]
        if teacher is None:
            return None
        teacher = teacher.to(self.info.device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher

    def _print(self, text: str) -> None:
        if self.info.is_main:
            print(text, flush=True)

    def _lr(self) -> float:
        groups = self.state.optimizer.param_groups
        return next((g["lr"] for g in groups if not g.get("bop")), groups[0]["lr"])

    def resume(self) -> None:
        """Restore model, optimizer, scheduler, epoch, history and RNG states from ``out_dir/last.pt``."""
        path = os.path.join(self.recipe.out_dir, "last.pt") if self.recipe.out_dir else None
        if path is None or not os.path.exists(path):
            self._print(f"resume: no checkpoint at {path}, starting from scratch")
            return
        ckpt, st = load_checkpoint(path), self.state
        mine, theirs = get_config(self.model), ckpt["config"]
        if (mine and mine.to_json()) != (theirs and theirs.to_json()):
            raise ValueError(f"{path} was trained with binarize config {theirs}, this model has {mine}")
        extra = ckpt["extra"]
        restore_masks_(self.model, ckpt["state_dict"])  # pruned before the checkpoint (recipe.prune)
        self.model.load_state_dict(ckpt["state_dict"])
        st.optimizer.load_state_dict(extra["optimizer"])
        st.scheduler.load_state_dict(extra["scheduler"])
        if self.regularizer is not None:
            self.regularizer.load_state_dict(extra["regularizer"])
        st.epoch, st.global_step, st.history = extra["epoch"], extra["global_step"], list(extra["history"])
        st.best_val_acc, st.best_epoch = extra["best_val_acc"], extra["best_epoch"]
        rngs = extra["rng"]
        set_rng_state(rngs[self.info.rank] if len(rngs) == self.info.world_size else rngs[0])
        self._print(f"resumed from {path} after epoch {st.epoch}")

    def run(self) -> FitResult:
        st, writer = self.state, None
        if self.out_dir:
            os.makedirs(self.out_dir, exist_ok=True)
            self.recipe.save(os.path.join(self.out_dir, "recipe.yaml"))
            writer = MetricsWriter(self.out_dir, tensorboard=self.recipe.log.tensorboard,
                                   plot=self.recipe.log.plot, start_epoch=st.epoch)
        for cb in self.callbacks:
            cb.on_train_start(st)
        try:
            while st.epoch < self.recipe.epochs and not st.stop:
                start = time.perf_counter()
                self._maybe_prune()
                train = self._train_epoch()
                val = evaluate(self.net, self.val_loader, device=self.info.device, amp=self.amp) \
                    if self.val_loader is not None else None
                self._end_epoch(train, val, time.perf_counter() - start, writer)
        finally:
            if writer is not None:
                writer.close()
        for cb in self.callbacks:
            cb.on_train_end(st)
        return FitResult(st.history, st.best_val_acc, st.best_epoch, self.recipe.out_dir)

    def _maybe_prune(self) -> None:
        """recipe.prune: prune at the start of epoch ``prune.epoch`` (every rank computes the same masks
        from the same weights); a resumed run whose checkpoint is already pruned keeps its masks."""
        p = self.recipe.prune
        if p.sparsity <= 0 or self.state.epoch != p.epoch:
            return
        if any(isinstance(m, MaskedWeight) for m in self.model.modules()):
            return
        got = magnitude_prune_(self.model, p.sparsity, scope=p.scope, granularity=p.granularity)
        mean = sum(got.values()) / max(1, len(got))
        self._print(f"prune: {len(got)} binary layers to sparsity {p.sparsity} ({p.granularity}, {p.scope}); "
                    f"realised mean {mean:.3f}")

    def _train_epoch(self) -> dict[str, Any]:
        st, recipe, device = self.state, self.recipe, self.info.device
        self.net.train()
        self.flips.start()
        if isinstance(self.train_loader.sampler, DistributedSampler):
            self.train_loader.sampler.set_epoch(st.epoch)
        progress = Progress(recipe.log.every, enabled=self.info.is_main, epoch=st.epoch + 1,
                            epochs=recipe.epochs, steps=len(self.train_loader))
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.float64, device=device)
        count = 0
        for step, (x, y) in enumerate(self.train_loader, 1):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits, loss = self._step(x, y)
            loss_sum += loss.double() * y.numel()
            correct += (logits.argmax(dim=1) == y).sum()
            count += y.numel()
            progress.update(step, loss_sum, correct, count, self._lr())
        sums = all_reduce_sum(torch.stack([loss_sum, correct, loss_sum.new_tensor(count)]))
        loss_sum, correct, total = sums.tolist()
        return {"train_loss": loss_sum / total, "train_acc": correct / total, "flip_ratio": self.flips.ratio()}

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        st, recipe = self.state, self.recipe
        with _autocast(self.amp):
            logits = self.net(x)
            teacher_logits = None
            if self.teacher is not None:
                with torch.no_grad():
                    teacher_logits = self.teacher(x)
            loss = training_loss(logits, y, teacher_logits, alpha=recipe.distill.alpha,
                                 temperature=recipe.distill.temperature)
            if self.regularizer is not None:
                loss = self.regularizer(loss)  # task loss + the terms' penalties
        st.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        st.optimizer.step()
        st.scheduler.step()
        st.global_step += 1
        if self.clip is not None:
            clip_latent_weights_(self.model, self.clip)
        return logits.detach(), loss.detach()

    def _end_epoch(self, train: dict[str, Any], val: dict[str, float] | None, seconds: float,
                   writer: MetricsWriter | None) -> None:
        st = self.state
        st.epoch += 1
        if not math.isfinite(train["train_loss"]):
            raise FloatingPointError(f"training loss is {train['train_loss']} in epoch {st.epoch}")
        row = {"epoch": st.epoch, "train_loss": train["train_loss"], "train_acc": train["train_acc"],
               "val_loss": None if val is None else val["loss"], "val_acc": None if val is None else val["accuracy"],
               "lr": self._lr(), "flip_ratio": train["flip_ratio"], "seconds": seconds}
        st.history.append(row)
        improved = row["val_acc"] is not None and (st.best_val_acc is None or row["val_acc"] > st.best_val_acc)
        if improved:
            st.best_val_acc, st.best_epoch = row["val_acc"], st.epoch
        rngs = all_gather_objects(rng_state())  # a collective: every rank calls it
        self._print(_summary_line(row, self.recipe.epochs, improved))
        if self.out_dir:
            self._save(rngs, improved)
            if writer is not None:
                writer.write(st.history)
        for cb in self.callbacks:
            cb.on_epoch_end(st)

    def _save(self, rngs: list[dict[str, Any]], improved: bool) -> None:
        """best.pt first, then last.pt: a kill in between only repeats this epoch on resume."""
        st, recipe_text = self.state, self.recipe.to_yaml()
        if improved:
            best = {"epoch": st.epoch, "recipe": recipe_text, "metrics": st.history[-1]}
            atomic_write(os.path.join(self.out_dir, "best.pt"),
                         lambda tmp: save_checkpoint(tmp, self.model, extra=best))
        extra = {"epoch": st.epoch, "global_step": st.global_step, "recipe": recipe_text,
                 "optimizer": st.optimizer.state_dict(), "scheduler": st.scheduler.state_dict(), "rng": rngs,
                 "history": st.history, "best_val_acc": st.best_val_acc, "best_epoch": st.best_epoch,
                 "regularizer": {} if self.regularizer is None else self.regularizer.state_dict()}
        atomic_write(os.path.join(self.out_dir, "last.pt"), lambda tmp: save_checkpoint(tmp, self.model, extra=extra))


def _summary_line(row: dict[str, Any], epochs: int, improved: bool) -> str:
    text = f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.4f} acc {100 * row['train_acc']:.2f}%"
    if row["val_acc"] is not None:
        text += f"  val loss {row['val_loss']:.4f} acc {100 * row['val_acc']:.2f}%"
    if row["flip_ratio"] is not None:
        text += f"  flips {100 * row['flip_ratio']:.3f}%"
    return text + f"  lr {row['lr']:.3g}  {row['seconds']:.1f} s" + ("  *best" if improved else "")
