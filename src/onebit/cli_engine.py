"""The engine's subcommands of ``onebit`` (registered by ``onebit.cli``):

    onebit export CHECKPOINT_OR_ZOO_MODEL -o model.onebit [--method bireal] [--image-size 224] [--quantize int8]
    onebit run model.onebit [--input x.npy] [--threads N] [--output y.npy]
    onebit bench model.onebit --threads 1 2 [--repeats 50] [--torch ZOO_MODEL] [--profile [N]]

``export`` takes a checkpoint written by ``onebit train`` (its recipe rebuilds the model) or a zoo model
name (``onebit.models.list_models()``; random weights, ``--method`` binarizes it, default: the first
method the zoo lists for it). ``bench`` prints the median latency per thread count and, with
``--torch NAME`` (or when the file's metadata names a zoo model), torch FP32 of that model on the same
threads and the speed-up.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Callable

from .timing import median_seconds

__all__ = ["add_engine_commands"]


def _zoo_model(name: str, method: Any, classes: int | None, image_size: int | None):
    """(model, example input, metadata) of zoo model ``name``."""
    import torch

    from . import models
    from .models.registry import MODELS

    info = MODELS[name]
    c, h, w = info.input_size
    if image_size:
        h = w = image_size
    classes = classes or (1000 if info.layout == "imagenet" else 10)
    model = models.create(name, num_classes=classes, in_chans=c, method=method).eval()
    meta = {"zoo_model": name, "method": str(method), "num_classes": str(classes)}
    return model, torch.randn(1, c, h, w), meta


def cmd_export(args: argparse.Namespace) -> int:
    """Export a checkpoint or a zoo model to a .onebit file."""
    import torch

    from . import models
    from .models.registry import MODELS
    from .export import ExportError, export

    src = args.model
    if os.path.exists(src):
        from .train.build import load_trained_model

        model, recipe, _ = load_trained_model(src)
        size = args.image_size or (28 if recipe.data.name in ("fashion_mnist", "mnist") else 32)
        x, meta = torch.randn(1, recipe.model.in_chans, size, size), {"checkpoint": os.path.basename(src)}
    elif src in models.list_models():
        method = args.method or MODELS[src].methods[0]
        model, x, meta = _zoo_model(src, method, args.num_classes, args.image_size)
    else:
        args.error(f"{src!r} is neither a checkpoint file nor a zoo model ({', '.join(models.list_models())})")
    try:
        with torch.no_grad():
            blob = export(model.eval(), x, metadata=meta, quantize=args.quantize)
    except ExportError as exc:
        args.error(f"cannot export {src!r}: {exc}")
    with open(args.output, "wb") as f:
        f.write(blob)
    print(f"wrote {args.output}: {len(blob)} bytes, input {tuple(x.shape[1:])}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run a .onebit file on an .npy input (or a random one) and print or save the output."""
    import numpy as np

    from .engine import Engine

    engine = Engine(args.model, num_threads=args.threads)
    if args.input:
        x = np.load(args.input).astype(np.float32, copy=False)
        x = x[None] if x.ndim == 3 else x
    else:
        x = np.random.default_rng(0).standard_normal((1, *engine.input_shape), dtype=np.float32)
    y = engine(x)
    if args.output:
        np.save(args.output, y)
        print(f"wrote {args.output}: {y.shape}")
    else:
        flat = y.reshape(y.shape[0], -1)
        for i, row in enumerate(flat):
            top = np.argsort(-row)[:5]
            print(f"sample {i}: top-5 " + ", ".join(f"{j}:{row[j]:.4f}" for j in top))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Median batch-1 latency of a .onebit file per thread count (and torch FP32 of a zoo model)."""
    import numpy as np
    import torch

    from . import models
    from .models.registry import MODELS
    from .engine import Engine

    engine = Engine(args.model, num_threads=1)
    x = np.random.default_rng(0).standard_normal((1, *engine.input_shape), dtype=np.float32)
    ref = args.torch or engine.metadata.get("zoo_model")
    fp32 = None
    if ref:
        if ref not in models.list_models():
            args.error(f"--torch {ref!r} is not a zoo model")
        classes = int(engine.metadata.get("num_classes", 0)) or None
        fp32 = _zoo_model(ref, None, classes, engine.input_shape[1])[0]
    from .kernels import dispatch_summary

    print(f"{dispatch_summary()}; weights packed at load: {engine.packed_weight_bytes / 2**20:.2f} MiB", flush=True)
    saved = torch.get_num_threads()
    try:
        for t in args.threads:
            e = Engine(args.model, num_threads=t)
            ms = 1e3 * median_seconds(lambda: e(x), args.repeats)
            line = f"threads {t}: engine {ms:.3f} ms (median of {args.repeats})"
            if fp32 is not None:
                torch.set_num_threads(t)
                xt = torch.from_numpy(x)
                with torch.inference_mode():
                    tms = 1e3 * median_seconds(lambda: fp32(xt), args.repeats)
                line += f"; torch FP32 {ref} {tms:.3f} ms; speed-up x{tms / ms:.2f}"
            print(line, flush=True)
            if args.profile:
                _print_profile(e, x, args.profile)
    finally:
        torch.set_num_threads(saved)
    return 0


def _print_profile(engine, x, top: int) -> None:
    """Where one call's time goes: per op type (summed), then the `top` slowest ops (median of 5 calls;
    an op fused into its producer reports 0 and its time is the producer's)."""
    import statistics

    runs = [engine.profile(x) for _ in range(5)]
    secs = [statistics.median(r[i][2] for r in runs) for i in range(len(runs[0]))]
    by_type: dict[str, float] = {}
    for (kind, _, _), s in zip(runs[0], secs):
        by_type[kind] = by_type.get(kind, 0.0) + s
    total = sum(secs)
    print(f"  profile: {1e3 * total:.3f} ms in {len(secs)} ops; by type: " + ", ".join(
        f"{k} {1e3 * v:.3f} ms ({v / total:.0%})" for k, v in sorted(by_type.items(), key=lambda kv: -kv[1]) if v > 0))
    order = sorted(range(len(secs)), key=lambda i: -secs[i])[:top]
    for i in order:
        kind, name, _ = runs[0][i]
        print(f"    #{i:<4d} {kind:<14s} {1e3 * secs[i]:8.3f} ms  {name}")


def add_engine_commands(command: Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]) -> None:
    """Register export / run / bench with the ``command(name, func, help)`` helper of onebit.cli."""
    ex = command("export", cmd_export, "export a checkpoint or a zoo model to a .onebit file for the engine")
    ex.add_argument("model", help="a checkpoint written by `onebit train`, or a zoo model name")
    ex.add_argument("-o", "--output", required=True, help="the .onebit file to write")
    ex.add_argument("--method", default=None, help="zoo models: binarization method (default: the zoo's first)")
    ex.add_argument("--num-classes", type=int, default=None, help="zoo models (default 1000 for ImageNet, else 10)")
    ex.add_argument("--image-size", type=int, default=None, help="input H = W (default: the model's own)")
    # onebit.export.quantize.QUANTIZE_SCHEMES (not imported here: the CLI imports torch lazily)
    ex.add_argument("--quantize", choices=["int8"], default=None,
                    help="store the float layers (stem, classifier, float shortcuts) as int8 and run them in integer "
                         "arithmetic: faster and smaller, not bit-exact to the float model (default: float32)")

    rn = command("run", cmd_run, "run a .onebit model with the C++ engine")
    rn.add_argument("model", help="a .onebit file")
    rn.add_argument("--input", default=None, help="an .npy of (N, C, H, W) or (C, H, W) (default: random)")
    rn.add_argument("--output", default=None, help="save the output here (.npy) instead of printing top-5")
    rn.add_argument("--threads", type=int, default=1)

    bn = command("bench", cmd_bench, "batch-1 latency of a .onebit model (median), vs torch FP32 of a zoo model")
    bn.add_argument("model", help="a .onebit file")
    bn.add_argument("--threads", type=int, nargs="+", default=[1])
    bn.add_argument("--repeats", type=int, default=50)
    bn.add_argument("--torch", default=None, help="zoo model to time in torch FP32 (default: the file's zoo_model)")
    bn.add_argument("--profile", type=int, nargs="?", const=10, default=0, metavar="N",
                    help="also print the per-op profile: time per op type and the N slowest ops (default 10)")
