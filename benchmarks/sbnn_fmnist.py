"""Trained SBNN models on Fashion-MNIST: accuracy, stored mask size and engine time of the binary layers
against the dense BNN of the same backbone (issue 6: a method counts when a model *trained* with it
runs in the engine with its promised efficiency measured).

    .venv/bin/python benchmarks/sbnn_fmnist.py [--epochs 4] [--limit N] [--rounds 15] [--out-dir runs/sbnn_fmnist]

Runs (cnn28, the fashion_mnist_bnn recipe's optimizer and schedule, one seed, same epochs for all):
  * ``bnn``: the dense BNN baseline (sign weights);
  * ``sbnn``: SBNN as published (two-level {alpha, beta} weights, expected-connections penalty, EC = 0.05:
    about 95 % of the weights at the 0-bit value, unstructured);
  * ``sbnn0-ec25``: SBNN's sparse domain {0, alpha} (``domain_weight`` with ``beta: zero``) with the
    penalty at EC = 0.25 (the 1-bits drift toward 25 %: unstructured sparsity);
  * ``sbnn0-block75``: the sparse domain without the penalty (EC = 0.5), pruned at the start of epoch 1
    to 75 % in engine blocks (``prune.granularity=block``: 8 output x 64 input channels per tap, pruned
    weights 0), then fine-tuned with the masks fixed.
Runs resume (each keeps its run directory), so a second call only re-measures. Reports the final
model's test accuracy, the binary layers' weight bytes as stored in the .onebit file, and the engine
time of the binary ops (``Engine.profile``, best of --rounds, batch 1, 1 thread).
"""

from __future__ import annotations

import argparse
import json
import math
import os

import torch

import onebit
from onebit.export import export, read_model
from onebit.sparsity import sparsity_report
from onebit.train import build_loaders, evaluate, load_recipe, load_trained_model, train_recipe

BINARY_OPS = {"bconv2d", "blinear", "sbconv2d", "sblinear"}
def sparse_domain_sbnn() -> str:
    """The sbnn method with beta = 0 (SBNN's sparse domain), as an inline config for model.method."""
    config = json.loads(onebit.methods.get("sbnn").to_json())
    config["weight_quantizer"] = {**config["weight_quantizer"], "beta": "zero"}
    return "model.method=" + json.dumps(config)


NO_PENALTY = ["regularizer.name=expected_connections", "regularizer.options={ec: 0.5}"]
RUNS = {
    "bnn": lambda: ["model.method=bnn"],
    "sbnn": lambda: ["model.method=sbnn"],
    "sbnn0-ec25": lambda: [sparse_domain_sbnn(), "regularizer.name=expected_connections",
                           "regularizer.options={ec: 0.25, gamma: 0.05, tol: 1.0e-4, ste_factor: 0.5}"],
    "sbnn0-block75": lambda: [sparse_domain_sbnn(), *NO_PENALTY, "prune.sparsity=0.75", "prune.epoch=1",
                              "prune.granularity=block"],
}


def weight_bytes(blob: bytes) -> int:
    """Bytes of the binary layers' weights as stored: packed sign weights, or SBNN masks (dense or sparse)."""
    mf = read_model(blob)
    roles = {"bconv2d": ("weight",), "blinear": ("weight",), "sbconv2d": ("mask", "mask_index", "mask_words"),
             "sblinear": ("mask", "mask_index", "mask_words")}
    return sum(mf.tensors[op["tensors"][r]].nbytes for op in mf.graph["ops"] if op["op"] in roles
               for r in roles[op["op"]] if r in op["tensors"])


def binary_time(blob: bytes, x: torch.Tensor, rounds: int) -> float:
    engine = onebit.Engine(blob, num_threads=1)
    return min(sum(t for op, _, t in engine.profile(x) if op in BINARY_OPS) for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--limit", type=int, default=None, help="training images (default: all 60000)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--out-dir", default="runs/sbnn_fmnist")
    parser.add_argument("--runs", default=",".join(RUNS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| run | test acc % | binary weight sparsity | binary weights stored B | vs bnn | binary ops us (1T) "
          "| vs bnn | file B |")
    print("|---|---|---|---|---|---|---|---|")
    base = None
    for name in args.runs.split(","):
        recipe = load_recipe("fashion_mnist_bnn").override([
            *RUNS[name](), f"epochs={args.epochs}", f"data.limit={'null' if args.limit is None else args.limit}",
            f"out_dir={os.path.join(args.out_dir, name)}", "log.every=0", "log.plot=false", "log.tensorboard=false"])
        train_recipe(recipe, resume=True)
        model, _, _ = load_trained_model(os.path.join(recipe.out_dir, "last.pt"))
        model.eval()
        acc = evaluate(model, build_loaders(recipe)[1])["accuracy"]
        x = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        blob = export(model, x)
        wb, t = weight_bytes(blob), binary_time(blob, x, args.rounds)
        base = base or (wb, t)
        print(f"| {name} | {100 * acc:.2f} | {100 * sparsity_report(model).sparsity:.1f} % | {wb} | "
              f"{base[0] / wb:.2f}x smaller | {t * 1e6:.1f} | {base[1] / t:.2f}x | {len(blob)} |", flush=True)
        assert math.isfinite(t)


if __name__ == "__main__":
    main()
