"""``onebit compare``: every method on one footing — same backbone, data, budget and seeds.

For each method (and the float model as the reference) and each seed, :func:`compare` trains the
backbone with one shared recipe (only the method changes: its quantizers, blocks, regularizers and
latent clipping), evaluates the *final* model on the test split (not the best epoch: the test split
is not used to pick anything), and records parameters and sizes. It then exports each trained
model to a ``.onebit`` file and times it in the engine at 1 and 2 threads, next to the float model
in torch FP32 on the same threads, when the exporter and engine are available (otherwise those
columns say ``n/a``).

Everything lands in ``out_dir``: one directory per run (``<method>/seed<k>/`` with the training
run's checkpoints and a ``result.json`` once finished), ``results.json`` (all rows), ``table.md``
(a markdown section for RESULTS.md) and ``accuracy_vs_latency.png``. A run whose ``result.json``
exists is not trained again, and an unfinished run resumes from its last checkpoint, so a killed
comparison continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import nn

from .timing import median_seconds

__all__ = ["BUDGETS", "Budget", "MethodRow", "compare", "markdown_table", "time_call"]

FLOAT = "float"


@dataclass(frozen=True)
class Budget:
    """What every run of a comparison gets: epochs over ``limit`` training images (None = all)."""

    epochs: int
    limit: int | None
    batch_size: int = 128
    lr: float = 3e-3

    def overrides(self) -> list[str]:
        return [f"epochs={self.epochs}", f"data.limit={'null' if self.limit is None else self.limit}",
                f"data.batch_size={self.batch_size}", f"optim.lr={self.lr}"]


#: ``cpu``: the nine methods plus float on cnn28 / Fashion-MNIST, one seed, well under an hour on 2
#: cores; ``full``: meant for a GPU machine.
BUDGETS: dict[str, Budget] = {
    "tiny": Budget(epochs=1, limit=2000, batch_size=64),
    "cpu": Budget(epochs=2, limit=20000),
    "full": Budget(epochs=60, limit=None, batch_size=256, lr=2e-3),
}


@dataclass
class MethodRow:
    """One method's results over its seeds."""

    method: str
    accuracies: list[float]
    binary_params: int
    float_params: int
    file_bytes: int | None = None
    latency_ms: dict[int, float] = dataclasses.field(default_factory=dict)
    float_latency_ms: dict[int, float] = dataclasses.field(default_factory=dict)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def spread(self) -> float:
        return statistics.stdev(self.accuracies) if len(self.accuracies) > 1 else 0.0

    def speedup(self, threads: int) -> float | None:
        own, ref = self.latency_ms.get(threads), self.float_latency_ms.get(threads)
        return None if own is None or ref is None else ref / own


def time_call(fn: Callable[[], Any], *, repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    return 1e3 * median_seconds(fn, repeats, warmup)


def _torch_latency(model: nn.Module, x: torch.Tensor, threads: int) -> float:
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            return time_call(lambda: model(x))
    finally:
        torch.set_num_threads(saved)


def _engine_measurements(model: nn.Module, x: torch.Tensor, threads: Sequence[int]) -> tuple[int | None, dict]:
    """File size and engine latency per thread count; (None, {}) when export or engine is unavailable."""
    try:
        from .export import export as export_model  # type: ignore[attr-defined]
        from .engine import Engine  # type: ignore[import-not-found]
    except ImportError:
        return None, {}
    from .export import ExportError

    try:
        data = export_model(model, x)
    except ExportError as exc:  # a method the engine does not run yet: its row says n/a
        print(f"[compare] not exported: {str(exc).splitlines()[0]}")
        return None, {}
    latency = {}
    for t in threads:
        engine = Engine(data, num_threads=t)
        latency[t] = time_call(lambda: engine(x))
    return len(data), latency


def _run_one(recipe, out_dir: str, seed: int, method: str | None) -> dict[str, Any]:
    """Train (or resume) one run and return its result, cached in ``result.json``."""
    from .train.build import binarized_model, build_loaders
    from .train.fit import evaluate, fit, seed_everything

    path = os.path.join(out_dir, "result.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    run = recipe.override([f"seed={seed}", f"out_dir={out_dir}"])
    run = dataclasses.replace(run, model=dataclasses.replace(run.model, method=method))
    seed_everything(run.seed)
    model = binarized_model(run.model)
    train_loader, test_loader = build_loaders(run)
    fit(model, train_loader, test_loader, run, resume=True)
    metrics = evaluate(model, test_loader)
    result = {"method": method or FLOAT, "seed": seed, "test_acc": metrics["accuracy"], "count": metrics["count"]}
    with open(path + ".tmp", "w") as f:
        json.dump(result, f)
    os.replace(path + ".tmp", path)  # atomic: a killed run never leaves a half-written result
    return result


def _trained_model(recipe, out_dir: str, method: str | None) -> nn.Module:
    from .train.build import load_trained_model

    return load_trained_model(os.path.join(out_dir, "last.pt"))[0].eval()


def compare(methods: Sequence[str], *, model: str = "cnn28", data: str = "fashion_mnist", seeds: int = 1,
            budget: str | Budget = "cpu", out_dir: str = "runs/compare", threads: Sequence[int] = (1, 2),
            overrides: Sequence[str] = (), log: Callable[[str], None] = print) -> list[MethodRow]:
    """Train every method (plus the float model) on ``model``/``data`` with the same budget and seeds.

    Returns one :class:`MethodRow` per method, the float model first; writes ``results.json``,
    ``table.md`` and ``accuracy_vs_latency.png`` (when matplotlib is installed) to ``out_dir``.
    """
    from .train.recipe import Recipe

    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    spend = BUDGETS[budget] if isinstance(budget, str) and budget in BUDGETS else budget
    if not isinstance(spend, Budget):
        raise ValueError(f"unknown budget {budget!r}; valid: {sorted(BUDGETS)}")
    base = Recipe.from_dict({"model": {"name": model}, "data": {"name": data}, "log": {"plot": False}})
    base = base.override([*spend.overrides(), *overrides])
    names = [FLOAT, *[m for m in methods if m != FLOAT]]
    rows = []
    for name in names:
        method = None if name == FLOAT else name
        results = []
        for seed in range(seeds):
            run_dir = os.path.join(out_dir, name.replace("+", "_plus"), f"seed{seed}")
            log(f"[compare] {name} seed {seed} -> {run_dir}")
            results.append(_run_one(base, run_dir, seed, method))
        rows.append(_measure(base, name, method, results, os.path.join(out_dir, name.replace("+", "_plus"), "seed0"),
                             threads, float_row=rows[0] if rows else None))
        log(f"[compare] {name}: test accuracy {100 * rows[-1].mean:.2f}% +- {100 * rows[-1].spread:.2f}")
    _write_outputs(rows, out_dir, base, seeds, spend)
    return rows


def _measure(recipe, name: str, method: str | None, results: list[dict], seed0_dir: str,
             threads: Sequence[int], float_row: MethodRow | None) -> MethodRow:
    """Sizes from ``onebit.summary``; latency of the seed-0 model (engine, or torch for float)."""
    from .summary import summary

    net = _trained_model(recipe, seed0_dir, method)
    size = (1, recipe.model.in_chans, *_image_size(recipe))
    stats = summary(net, size, print_table=False)
    row = MethodRow(name, [r["test_acc"] for r in results], stats.binary_params, stats.float_params)
    x = torch.randn(size)
    if method is None:
        row.latency_ms = {t: _torch_latency(net, x, t) for t in threads}
    else:
        row.file_bytes, row.latency_ms = _engine_measurements(net, x, threads)
    row.float_latency_ms = dict(float_row.latency_ms if float_row is not None else row.latency_ms)
    return row


def _image_size(recipe) -> tuple[int, int]:
    from .train.build import build_dataset

    image = build_dataset(recipe, "val")[0][0]
    return int(image.shape[-2]), int(image.shape[-1])


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def markdown_table(rows: Sequence[MethodRow], threads: Sequence[int] = (1, 2)) -> str:
    """The comparison as a markdown table (accuracy as mean +- standard deviation over seeds)."""
    head = ["method", "test acc % (mean +- sd)", "seeds", "1-bit params", "32-bit params", "file KiB"]
    head += [f"latency {t}T ms" for t in threads] + [f"speed-up vs float {t}T" for t in threads]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.method, f"{100 * r.mean:.2f} +- {100 * r.spread:.2f}", str(len(r.accuracies)),
                 f"{r.binary_params:,}", f"{r.float_params:,}",
                 _fmt(None if r.file_bytes is None else r.file_bytes / 1024, ".1f")]
        cells += [_fmt(r.latency_ms.get(t), ".3f") for t in threads]
        cells += [_fmt(r.speedup(t), ".2f") + ("x" if r.speedup(t) is not None else "") for t in threads]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _write_outputs(rows: list[MethodRow], out_dir: str, recipe, seeds: int, spend: Budget) -> None:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump([dataclasses.asdict(r) for r in rows], f, indent=1)
    header = (f"Backbone `{recipe.model.name}`, data `{recipe.data.name}`, {seeds} seed(s), budget "
              f"{spend.epochs} epoch(s) over {spend.limit or 'all'} training images, Adam lr {spend.lr}, "
              f"batch {spend.batch_size}; accuracy of the final model on the full test split.\n\n")
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(header + markdown_table(rows))
    _plot(rows, os.path.join(out_dir, "accuracy_vs_latency.png"))


def _plot(rows: Sequence[MethodRow], path: str) -> None:
    """Accuracy against 1-thread latency (or against model memory when no latency was measured)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    have_latency = all(1 in r.latency_ms for r in rows)
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        x = r.latency_ms[1] if have_latency else (r.binary_params / 8 + 4 * r.float_params) / 1024
        ax.errorbar(x, 100 * r.mean, yerr=100 * r.spread, fmt="o", capsize=3)
        ax.annotate(r.method, (x, 100 * r.mean), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("latency, 1 thread (ms)" if have_latency else "model memory (KiB)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
