"""SBNN ({alpha, beta} = {gain, 0} weights) vs dense binary: file size and engine latency, 1 thread.

    .venv/bin/python benchmarks/bench_sbnn.py [--rounds 15] [--sparsity 0.5,0.75,0.9] [--no-zoo]

Layer: BinaryConv2d 128 -> 128, 3x3, padding 1, on 28x28 (+ folded BatchNorm, float output), batch 1.
Dense = the same layer with sign weights (``bconv2d``); SBNN = ``domain_weight`` with beta = 0 (phi =
tau), the mask at sparsity s (fraction of zero weights) drawn as
  * ``random``:  every weight independently (unstructured magnitude pruning);
  * ``tap``:     whole (output channel, tap) columns over all input channels (a word-aligned pattern);
  * ``kernel``:  whole (output channel, input channel) 3x3 kernels;
  * ``filter``:  whole output channels (filter pruning): a fraction 1 - 2 (1 - s) of the filters all
                 zero, the live ones at 50 % density (overall sparsity s).
Latency: the op's time from ``Engine.profile`` (best of --rounds). Sizes: the weight/mask tensor as
stored (raw packed uint64), the stored ``.onebit`` file, and the mask under two encodings measured
here: ``nzw`` = the nonzero 64-bit words + a 1-bit-per-word bitmap index; ``H`` = the entropy bound
of an unstructured bit mask at that density (no encoding can beat it on i.i.d. bits).
Zoo: resnet20 (CIFAR, 32x32), method bnn (dense) vs sbnn at the same mask sparsities (random).
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from torch import nn

import onebit
from onebit.export import export, read_model
from onebit.nn import BinaryConv2d


def layer_model(sbnn: bool) -> nn.Module:
    kw = {"weight_quantizer": "domain_weight"} if sbnn else {}
    return nn.Sequential(BinaryConv2d(128, 128, 3, padding=1, bias=False, input_quantizer="approx_sign", **kw),
                         nn.BatchNorm2d(128)).eval()


def draw_mask(kind: str, s: float, shape, gen: torch.Generator) -> torch.Tensor:
    co, ci, kh, kw = shape
    keep = 1.0 - s
    if kind == "random":
        return torch.rand(shape, generator=gen) < keep
    if kind == "tap":
        return (torch.rand(co, 1, kh, kw, generator=gen) < keep).expand(shape)
    if kind == "kernel":
        return (torch.rand(co, ci, 1, 1, generator=gen) < keep).expand(shape)
    if kind == "filter":
        live = torch.rand(co, 1, 1, 1, generator=gen) < min(1.0, 2 * keep)
        return live & (torch.rand(shape, generator=gen) < 0.5)
    raise ValueError(kind)


@torch.no_grad()
def set_sbnn_masks(model: nn.Module, kind: str, s: float, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, BinaryConv2d) and hasattr(m.weight_quantizer, "tau"):
            m.weight_quantizer.tau.fill_(0.5)
            m.weight_quantizer.phi.fill_(0.5)  # alpha = 1, beta = 0
            mask = draw_mask(kind, s, m.weight.shape, gen)
            m.weight.copy_(torch.where(mask, 1.0, -1.0) * (m.weight.abs() + 1e-3))


def best_op_time(engine: onebit.Engine, x: torch.Tensor, ops: set[str], rounds: int) -> float:
    best = math.inf
    for _ in range(rounds):
        best = min(best, sum(t for op, _, t in engine.profile(x) if op in ops))
    return best


def entropy_bits(p: float) -> float:
    return 0.0 if p in (0.0, 1.0) else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def nzw_bytes(words: np.ndarray) -> int:
    return 8 * int(np.count_nonzero(words)) + (words.size + 7) // 8


def weight_tensor(blob: bytes, op_type: str, key: str) -> np.ndarray:
    mf = read_model(blob)
    return np.concatenate([mf.tensors[op["tensors"][key]].ravel() for op in mf.graph["ops"] if op["op"] == op_type])


def run_layer(rounds: int, sparsities: list[float]) -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 128, 28, 28)
    dense = layer_model(False)
    dense_blob = export(dense, x)
    dw = weight_tensor(dense_blob, "bconv2d", "weight")
    t_dense = best_op_time(onebit.Engine(dense_blob), x, {"bconv2d"}, rounds)
    print(f"## layer 128->128 3x3 @ 28x28, 1 thread: dense bconv2d {t_dense * 1e6:.0f} us, "
          f"weight {dw.nbytes} B, file {len(dense_blob)} B")
    print("| pattern | sparsity | sbconv2d us | speed-up vs dense | mask raw B | mask nzw B | H bound B "
          "| file B | best mask / dense weight |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in ("random", "tap", "kernel", "filter"):
        for s in sparsities:
            model = layer_model(True)
            set_sbnn_masks(model, kind, s)
            blob = export(model, x)
            ops = {op["op"] for op in read_model(blob).graph["ops"]}
            assert "sbconv2d" in ops, ops
            mw = weight_tensor(blob, "sbconv2d", "mask")
            t = best_op_time(onebit.Engine(blob), x, {"sbconv2d"}, rounds)
            h = math.ceil(entropy_bits(1.0 - s) * 128 * 128 * 9 / 8)
            best = min(mw.nbytes, nzw_bytes(mw))
            print(f"| {kind} | {s:.2f} | {t * 1e6:.0f} | {t_dense / t:.2f}x | {mw.nbytes} | {nzw_bytes(mw)} | {h} "
                  f"| {len(blob)} | {dw.nbytes / best:.2f}x smaller |")


def run_zoo(rounds: int, sparsities: list[float]) -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 3, 32, 32)
    bin_ops = {"bconv2d", "blinear", "sbconv2d", "sblinear"}
    dense = onebit.models.create("resnet20", num_classes=10, method="bnn").eval()
    blob = export(dense, x)
    t_bin = best_op_time(onebit.Engine(blob), x, bin_ops, rounds)
    t_all = best_op_time(onebit.Engine(blob), x, {op["op"] for op in read_model(blob).graph["ops"]}, rounds)
    dw = weight_tensor(blob, "bconv2d", "weight")
    print(f"## resnet20 @ 32x32, 1 thread: dense bnn binary layers {t_bin * 1e6:.0f} us (model {t_all * 1e6:.0f} us), "
          f"binary weights {dw.nbytes} B, file {len(blob)} B")
    print("| sparsity | binary layers us | speed-up | model us | masks raw B | masks nzw B | file B |")
    print("|---|---|---|---|---|---|---|")
    for s in sparsities:
        model = onebit.models.create("resnet20", num_classes=10, method="sbnn").eval()
        set_sbnn_masks(model, "random", s)
        blob = export(model, x)
        all_ops = {op["op"] for op in read_model(blob).graph["ops"]}
        eng = onebit.Engine(blob)
        t_b = best_op_time(eng, x, bin_ops, rounds)
        t_a = best_op_time(eng, x, all_ops, rounds)
        mw = weight_tensor(blob, "sbconv2d", "mask")
        print(f"| {s:.2f} | {t_b * 1e6:.0f} | {t_bin / t_b:.2f}x | {t_a * 1e6:.0f} | {mw.nbytes} | {nzw_bytes(mw)} "
              f"| {len(blob)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--sparsity", default="0.5,0.75,0.9")
    parser.add_argument("--no-zoo", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sp = [float(v) for v in args.sparsity.split(",")]
    run_layer(args.rounds, sp)
    if not args.no_zoo:
        run_zoo(args.rounds, sp)


if __name__ == "__main__":
    main()
