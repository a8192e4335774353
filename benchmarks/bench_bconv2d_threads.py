"""Binary conv layers inside the engine at 1 and 2 threads: the ResNet-18 3x3 shapes as a fraction of
the roofline and against torch FP32 of the same conv on the same threads, in one run.

    .venv/bin/python benchmarks/bench_bconv2d_threads.py [--threads 1 2] [--rounds 15] [--method bnn]

Each shape is a three-layer model (float 1x1 conv, binary 3x3 conv C -> C at stride 1, padding 1,
float 1x1 conv) exported to the engine; the figure is the engine's own time of the ``bconv2d`` op
(``Engine.profile``: im2col, the dispatched bgemm, the output transform and any fused stages), best
of --rounds, batch 1. Roofline: 1.21e12 binary MAC/s per core (DESIGN.md section 6), times the threads.
torch FP32 = ``F.conv2d`` of the float 3x3 conv with ``torch.set_num_threads(T)``, best of --rounds.
(benchmarks/bench_bconv2d.py times the kernels alone, per variant, on one thread.)
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

import onebit
from onebit.export import export
from onebit.timing import best_seconds

SHAPES = [(56, 64), (28, 128), (14, 256), (7, 512)]  # (H = W, C_in = C_out)
ROOFLINE = 1.21e12


def model(c: int, method: str) -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 3, padding=1, bias=False), nn.Conv2d(c, c, 1))
    return onebit.binarize_(m, method).eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--method", default="bnn")
    args = p.parse_args()
    print(f"ISA {onebit.kernels.active_isa()}; method {args.method}; roofline {ROOFLINE / 1e9:.0f} G per core")
    print("| layer | T | engine bconv2d | G binary MAC/s | % of T x roofline | torch FP32 conv | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for hw, c in SHAPES:
        x = torch.randn(1, c, hw, hw)
        m = model(c, args.method)
        with torch.no_grad():
            blob = export(m, x)
        w = torch.randn(c, c, 3, 3)
        macs = hw * hw * c * c * 9
        for t in args.threads:
            engine = onebit.Engine(blob, num_threads=t)
            at = [i for i, op in enumerate(engine.ops) if op["op"] == "bconv2d"]
            assert len(at) == 1, engine.ops
            xn = x.numpy()
            engine(xn)
            secs = min(engine.profile(xn)[at[0]][2] for _ in range(args.rounds))
            torch.set_num_threads(t)
            with torch.no_grad():
                F.conv2d(x, w, padding=1)
                ref = best_seconds(lambda: F.conv2d(x, w, padding=1), 1, args.rounds)
            rate = macs / secs
            print(f"| {hw}x{hw}x{c} | {t} | {secs * 1e6:.0f} us | {rate / 1e9:.0f} | {rate / (t * ROOFLINE):.0%} "
                  f"| {ref * 1e6:.0f} us | {ref / secs:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
