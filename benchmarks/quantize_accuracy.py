"""Int8 float layers on trained models: test accuracy, agreement and file size of the engine with
``export(..., quantize="int8")`` against the float32 file (which reproduces the PyTorch model).

    .venv/bin/python benchmarks/quantize_accuracy.py CHECKPOINT [CHECKPOINT ...] [--limit N] [--threads 1]

Each CHECKPOINT is a ``last.pt`` / ``best.pt`` written by ``onebit train`` (e.g. runs/sbnn_fmnist/bnn/last.pt
from benchmarks/sbnn_fmnist.py, or the ResNet-18 runs of RESULTS.md section 3); its recipe gives the
data set (Fashion-MNIST's test split here). Both files run in the C++ engine over the test set (batch 256);
reported: accuracy of each, the fraction of images whose top-1 class agrees, the largest logit
difference relative to the largest logit, and the bytes of each file.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch

import onebit
from onebit.export import export
from onebit.train import load_trained_model
from onebit.train.build import build_val_loader


def engine_logits(engine: onebit.Engine, loader, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    outs, labels, seen = [], [], 0
    for x, y in loader:
        outs.append(engine(x.contiguous().numpy()))
        labels.append(y.numpy())
        seen += len(y)
        if limit is not None and seen >= limit:
            break
    return np.concatenate(outs)[:limit], np.concatenate(labels)[:limit]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--limit", type=int, default=None, help="test images (default: all)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    print("| checkpoint | float32 file: acc % | int8 file: acc % | top-1 agreement % | max logit diff (rel) "
          "| file B float32 | file B int8 |")
    print("|---|---|---|---|---|---|---|")
    for path in args.checkpoints:
        model, recipe, _ = load_trained_model(path)
        model.eval()
        loader = build_val_loader(recipe.override(["data.val_batch_size=256"]))
        x0 = next(iter(loader))[0][:1]
        with torch.no_grad():
            blobs = {q: export(model, x0, quantize=q) for q in (None, "int8")}
        res = {q: engine_logits(onebit.Engine(b, num_threads=args.threads), loader, args.limit) for q, b in blobs.items()}
        (yf, labels), (yq, _) = res[None], res["int8"]
        acc = {q: 100 * float((r[0].argmax(1) == labels).mean()) for q, r in res.items()}
        agree = 100 * float((yf.argmax(1) == yq.argmax(1)).mean())
        diff = float(np.abs(yf - yq).max() / np.abs(yf).max())
        name = os.path.relpath(path)
        print(f"| {name} | {acc[None]:.2f} | {acc['int8']:.2f} | {agree:.2f} | {diff:.3f} | {len(blobs[None])} "
              f"| {len(blobs['int8'])} |", flush=True)


if __name__ == "__main__":
    main()
