"""The README's demo: train -> export -> engine, on Fashion-MNIST, on the CPU.

1. trains the zoo's ``cnn28`` in float and as a BNN (method ``bnn``: sign activations and weights,
   first and last layer float) with the shipped recipe ``fashion_mnist_bnn``;
2. prints both test accuracies side by side and the BNN's ``summary`` table;
3. exports the BNN to a ``.onebit`` file, runs the whole test set through ``onebit.Engine`` and checks
   it against PyTorch eval, then times batch-1 inference: engine vs torch FP32 on the same threads.

    python -m onebit.demo [--epochs 5] [--float-epochs 2] [--limit N] [--method bnn] [--out-dir runs/demo]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

import onebit
from onebit.compare import time_call
from onebit.train import evaluate, load_recipe, train_recipe
from onebit.train.build import build_val_loader


def _train(recipe, name: str, out_dir: str, epochs: int, method: str | None, limit: int | None):
    run = recipe.override([f"epochs={epochs}", f"out_dir={os.path.join(out_dir, name)}",
                           f"data.limit={'null' if limit is None else limit}", "log.plot=false"])
    run = run.override([f"model.method={method if method else 'null'}"])
    print(f"\n== training the {name} model: {run.model.name}, method {run.model.method}, {epochs} epoch(s) ==",
          flush=True)
    start = time.perf_counter()
    result = train_recipe(run)
    return result, time.perf_counter() - start, run


def _trained(run) -> torch.nn.Module:
    from onebit.train.build import load_trained_model

    return load_trained_model(os.path.join(run.out_dir, "last.pt"))[0].eval()


def _engine_check(model: torch.nn.Module, run, out_dir: str, float_model: torch.nn.Module) -> None:
    """Export, run the test set in the engine, compare with PyTorch eval, time batch 1."""
    path = os.path.join(out_dir, "cnn28_bnn.onebit")
    x1 = torch.zeros(1, run.model.in_chans, 28, 28)
    try:
        onebit.export.save(model, x1, path)
    except onebit.export.ExportError as exc:
        print(f"\nExport not possible yet: {exc}")
        return
    engine = onebit.Engine(path)
    agree = total = correct = 0
    worst = 0.0
    with torch.inference_mode():
        for x, y in build_val_loader(run):
            ref, out = model(x), engine(x)
            # relative to each sample's largest logit (a logit near 0 would make a per-element ratio meaningless)
            scale = ref.abs().amax(dim=1, keepdim=True).clamp_min(1e-6)
            worst = max(worst, float(((out - ref).abs() / scale).max()))
            agree += int((out.argmax(1) == ref.argmax(1)).sum())
            correct += int((out.argmax(1) == y).sum())
            total += y.numel()
    size, fsize = os.path.getsize(path), 4 * sum(p.numel() for p in float_model.parameters())
    print(f"\nEngine on the {total} test images: accuracy {100 * correct / total:.2f}%, same class as PyTorch "
          f"eval on {agree}/{total}, largest logit difference {worst:.1e} of the sample's largest logit")
    print(f"File {path}: {size / 1024:.1f} KiB (float model parameters: {fsize / 1024:.1f} KiB, "
          f"{fsize / size:.1f}x larger)")
    x = next(iter(build_val_loader(run)))[0][:1]
    for threads in (1, 2):
        saved = torch.get_num_threads()
        torch.set_num_threads(threads)
        with torch.inference_mode():
            t_float = time_call(lambda: float_model(x), repeats=50)
        torch.set_num_threads(saved)
        fast = onebit.Engine(path, num_threads=threads)
        t_engine = time_call(lambda: fast(x), repeats=50)
        print(f"batch-1 latency, {threads} thread(s): engine {t_engine:.3f} ms, torch FP32 float model "
              f"{t_float:.3f} ms ({t_float / t_engine:.1f}x)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5, help="BNN epochs (default 5)")
    parser.add_argument("--float-epochs", type=int, default=2, help="float model epochs (default 2)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--method", default="bnn", help="a method of onebit.methods (default bnn)")
    parser.add_argument("--out-dir", default="runs/demo")
    args = parser.parse_args(argv)

    recipe = load_recipe("fashion_mnist_bnn")
    print(f"onebit {onebit.__version__}: torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), "
          f"kernels {onebit.kernels.active_isa()} (available: {onebit.kernels.available_isas()})")
    float_result, float_s, float_run = _train(recipe, "float", args.out_dir, args.float_epochs, None, args.limit)
    bnn_result, bnn_s, bnn_run = _train(recipe, "bnn", args.out_dir, args.epochs, args.method, args.limit)
    float_model, bnn_model = _trained(float_run), _trained(bnn_run)
    float_acc = evaluate(float_model, build_val_loader(float_run))["accuracy"]
    bnn_acc = evaluate(bnn_model, build_val_loader(bnn_run))["accuracy"]
    print(f"\nTest accuracy on the 10,000 Fashion-MNIST test images (final epoch):\n"
          f"  float cnn28 ({args.float_epochs} epochs, {float_s:.0f} s): {100 * float_acc:.2f}%\n"
          f"  binary cnn28, method {args.method} ({args.epochs} epochs, {bnn_s:.0f} s): {100 * bnn_acc:.2f}%\n")
    onebit.summary(bnn_model, (1, bnn_run.model.in_chans, 28, 28))
    _engine_check(bnn_model, bnn_run, args.out_dir, float_model)


if __name__ == "__main__":
    main()
