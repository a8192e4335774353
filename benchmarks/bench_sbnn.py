"""SBNN ({alpha, beta} = {gain, 0} weights) vs dense binary: file size and engine latency, 1 thread.

    .venv/bin/python benchmarks/bench_sbnn.py [--rounds 15] [--sparsity 0.5,0.75,0.9] [--no-zoo]

Layer: BinaryConv2d 128 -> 128, 3x3, padding 1, on 28x28 (+ folded BatchNorm, float output), batch 1.
Dense = the same layer with sign weights (``bconv2d``); SBNN = ``domain_weight`` with beta = 0 (phi =
tau), the mask at sparsity s (fraction of zero weights) drawn as
  * ``random``:  every weight independently (unstructured magnitude pruning);
  * ``block``:   whole blocks of 8 output channels x 64 input channels at one tap, the engine's skip
                 unit (``onebit.sparsity.magnitude_prune_(..., granularity="block")``), live blocks at
                 full density (all of the block's weights nonzero); ``block-half``: the same with live
                 blocks at 50 % density (twice as many live blocks for the same sparsity);
  * ``tap``:     whole (output channel, tap) columns over all input channels (a word-aligned pattern);
  * ``kernel``:  whole (output channel, input channel) 3x3 kernels;
  * ``filter``:  whole output channels (filter pruning): a fraction 1 - 2 (1 - s) of the filters all
                 zero, the live ones at 50 % density (overall sparsity s).
Latency: the op's time from ``Engine.profile`` (best of --rounds). Sizes: the mask as the file stores
it (the converter writes the smaller of the raw packed mask and ``nzw`` = the nonzero 64-bit words +
a 1-bit-per-word index: ``mask_index`` / ``mask_words``), the whole ``.onebit`` file, and ``H`` = the
entropy bound of an unstructured bit mask at that density (no encoding can beat it on i.i.d. bits).
Zoo: resnet20 (CIFAR, 32x32): sbnn (= the reactnet method's blocks with two-level weights) against the
same blocks with dense sign weights (method reactnet), masks random or block-pruned
(``magnitude_prune_(granularity="block")``). "binary layers" = the time of the bconv2d / sbconv2d ops,
which includes the per-channel float ops fused into their epilogues (RPReLU, residual adds).
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
    if kind in ("block", "block-half"):
        half = kind == "block-half"   # live blocks at 50 % density: twice as many live blocks
        live = torch.rand((co + 7) // 8, 1, (ci + 63) // 64, kh, kw, generator=gen) < min(1.0, keep * (2 if half else 1))
        full = live.repeat_interleave(8, 0).repeat_interleave(64, 2)[:co, 0, :ci]
        return full & (torch.rand(shape, generator=gen) < 0.5) if half else full
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


def weight_tensor(blob: bytes, op_type: str, key: str) -> np.ndarray:
    mf = read_model(blob)
    return np.concatenate([mf.tensors[op["tensors"][key]].ravel() for op in mf.graph["ops"] if op["op"] == op_type])


def stored_mask_bytes(blob: bytes) -> int:
    """Bytes of every sbconv2d / sblinear mask as stored: raw, or index + nonzero words."""
    mf = read_model(blob)
    return sum(mf.tensors[name].nbytes for op in mf.graph["ops"] if op["op"] in ("sbconv2d", "sblinear")
               for role, name in op["tensors"].items() if role.startswith("mask"))


def run_layer(rounds: int, sparsities: list[float]) -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 128, 28, 28)
    dense = layer_model(False)
    dense_blob = export(dense, x)
    dw = weight_tensor(dense_blob, "bconv2d", "weight")
    t_dense = best_op_time(onebit.Engine(dense_blob), x, {"bconv2d"}, rounds)
    print(f"## layer 128->128 3x3 @ 28x28, 1 thread: dense bconv2d {t_dense * 1e6:.0f} us, "
          f"weight {dw.nbytes} B, file {len(dense_blob)} B")
    print("| pattern | sparsity | sbconv2d us | speed-up vs dense | mask stored B | H bound B "
          "| file B | dense weight / stored mask |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in ("random", "block", "block-half", "tap", "kernel", "filter"):
        for s in sparsities:
            model = layer_model(True)
            set_sbnn_masks(model, kind, s)
            blob = export(model, x)
            ops = {op["op"] for op in read_model(blob).graph["ops"]}
            assert "sbconv2d" in ops, ops
            stored = stored_mask_bytes(blob)
            t = best_op_time(onebit.Engine(blob), x, {"sbconv2d"}, rounds)
            h = math.ceil(entropy_bits(1.0 - s) * 128 * 128 * 9 / 8)
            print(f"| {kind} | {s:.2f} | {t * 1e6:.0f} | {t_dense / t:.2f}x | {stored} | {h} "
                  f"| {len(blob)} | {dw.nbytes / stored:.2f}x |")


def run_zoo(rounds: int, sparsities: list[float]) -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 3, 32, 32)
    bin_ops = {"bconv2d", "blinear", "sbconv2d", "sblinear"}
    dense = onebit.models.create("resnet20", num_classes=10, method="reactnet").eval()
    blob = export(dense, x)
    t_bin = best_op_time(onebit.Engine(blob), x, bin_ops, rounds)
    t_all = best_op_time(onebit.Engine(blob), x, {op["op"] for op in read_model(blob).graph["ops"]}, rounds)
    dw = weight_tensor(blob, "bconv2d", "weight")
    print(f"## resnet20 @ 32x32, 1 thread: dense (reactnet) binary layers {t_bin * 1e6:.0f} us (model {t_all * 1e6:.0f} us), "
          f"binary weights {dw.nbytes} B, file {len(blob)} B")
    print("| masks | sparsity | binary layers us | speed-up | model us | masks stored B | weights / masks | file B |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in ("random", "block-pruned"):
        for s in sparsities:
            model = onebit.models.create("resnet20", num_classes=10, method="sbnn").eval()
            if kind == "random":
                set_sbnn_masks(model, "random", s)
            else:  # all 1-bits, then magnitude_prune_ in engine blocks: live blocks at full density
                set_sbnn_masks(model, "random", 0.0)
                onebit.sparsity.magnitude_prune_(model, s, granularity="block")
            blob = export(model, x)
            all_ops = {op["op"] for op in read_model(blob).graph["ops"]}
            eng = onebit.Engine(blob)
            t_b = best_op_time(eng, x, bin_ops, rounds)
            t_a = best_op_time(eng, x, all_ops, rounds)
            stored = stored_mask_bytes(blob)
            print(f"| {kind} | {s:.2f} | {t_b * 1e6:.0f} | {t_bin / t_b:.2f}x | {t_a * 1e6:.0f} | {stored} "
                  f"| {dw.nbytes / stored:.2f}x | {len(blob)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--sparsity", default="0.5,0.75,0.9")
    parser.add_argument("--no-zoo", action="store_true")
    parser.add_argument("--no-layer", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sp = [float(v) for v in args.sparsity.split(",")]
    if not args.no_layer:
        run_layer(args.rounds, sp)
    if not args.no_zoo:
        run_zoo(args.rounds, sp)


if __name__ == "__main__":
    main()
