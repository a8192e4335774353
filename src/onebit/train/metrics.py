"""What a run records: per-epoch metrics (CSV, optional TensorBoard and PNG curves), progress lines,
and the flip ratio of binary weights."""

from __future__ import annotations

import csv
import importlib.util
import math
import os
import time
from typing import Any

import torch
from torch import nn

from ._util import atomic_write
from .optim import binary_weights

__all__ = ["COLUMNS", "FlipTracker", "MetricsWriter", "Progress", "plot_history"]

#: the columns of ``metrics.csv``, one row per epoch
COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "flip_ratio", "seconds")


class FlipTracker:
    """Fraction of latent binary weights whose sign (sign(0) = +1) changed since :meth:`start`."""

    def __init__(self, model: nn.Module) -> None:
        self.weights = binary_weights(model)
        self._signs: list[torch.Tensor] = []

    def start(self) -> None:
        self._signs = [w.detach() >= 0 for w in self.weights]

    def ratio(self) -> float | None:
        """None when the model has no binary weights."""
        total = sum(w.numel() for w in self.weights)
        if not total or not self._signs:
            return None
        flipped = sum(int(((w.detach() >= 0) != s).sum()) for w, s in zip(self.weights, self._signs))
        return flipped / total


class Progress:
    """Prints ``every`` steps: running loss and accuracy, learning rate and elapsed seconds."""

    def __init__(self, every: int, *, enabled: bool, epoch: int, epochs: int, steps: int) -> None:
        self.every, self.enabled = every, enabled and every > 0
        self.prefix = f"  epoch {epoch}/{epochs}"
        self.steps = steps
        self.start = time.perf_counter()

    def update(self, step: int, loss_sum: torch.Tensor, correct: torch.Tensor, count: int, lr: float) -> None:
        if not self.enabled or (step % self.every and step != self.steps):
            return
        print(f"{self.prefix} step {step}/{self.steps}  loss {loss_sum.item() / max(count, 1):.4f}"
              f"  acc {100 * correct.item() / max(count, 1):.2f}%  lr {lr:.3g}"
              f"  ({time.perf_counter() - self.start:.1f} s)", flush=True)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


class MetricsWriter:
    """Writes ``metrics.csv`` (rewritten whole from the history, so it always matches the last
    checkpoint after a resume), TensorBoard scalars under ``tb/`` when ``tensorboard`` is
    importable, and ``curves.png`` when ``matplotlib`` is importable."""

    def __init__(self, out_dir: str, *, tensorboard: bool, plot: bool, start_epoch: int = 0) -> None:
        self.out_dir = out_dir
        self.plot = plot and importlib.util.find_spec("matplotlib") is not None
        self.tb = None
        if tensorboard and importlib.util.find_spec("tensorboard") is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(os.path.join(out_dir, "tb"), purge_step=start_epoch + 1)

    def write(self, history: list[dict[str, Any]]) -> None:
        def write_csv(path: str) -> None:
            with open(path, "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(COLUMNS)
                writer.writerows([[_cell(row.get(c)) for c in COLUMNS] for row in history])

        atomic_write(os.path.join(self.out_dir, "metrics.csv"), write_csv)
        if self.tb is not None and history:
            row = history[-1]
            for key in COLUMNS[1:]:
                if row.get(key) is not None:
                    self.tb.add_scalar(key, row[key], row["epoch"])
            self.tb.flush()
        if self.plot and history:
            plot_history(history, os.path.join(self.out_dir, "curves.png"))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def plot_history(history: list[dict[str, Any]], path: str) -> None:
    """Loss, accuracy and flip-ratio curves as a PNG (needs matplotlib; uses no global pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(12, 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    epochs = [row["epoch"] for row in history]
    panels = (("loss", ("train_loss", "val_loss")), ("accuracy", ("train_acc", "val_acc")),
              ("flip ratio", ("flip_ratio",)))
    for ax, (title, keys) in zip(fig.subplots(1, 3), panels):
        for key in keys:
            points = [(e, row[key]) for e, row in zip(epochs, history) if row.get(key) is not None]
            if points:
                ax.plot(*zip(*points), marker="o", label=key)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.has_data():
            ax.legend()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=80))
