"""Bit-packing throughput per kernel variant, vs the pure-torch packer, in one run.

    .venv/bin/python benchmarks/bench_bitpack.py [--repeats 200]

Shapes are ResNet-18 activations at batch 1 (NHWC rows x channels). Packing is memory-bound:
the figure of merit is input GB/s (4 bytes per float read).
"""

from __future__ import annotations

import argparse

import torch

from onebit import _C, bitpack, kernels
from onebit.bitpack import MODES, words_for
from onebit.timing import best_seconds, cpu_name

SHAPES = [(56 * 56, 64), (28 * 28, 128), (14 * 14, 256), (7 * 7, 512), (1, 4608)]




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"CPU: {cpu_name()}; ISAs: {kernels.available_isas()}; 1 thread; torch {torch.__version__}")
    variants = kernels.runnable_variants("bitpack")
    print(f"{'rows x C':>12} " + " ".join(f"{v:>16}" for v in variants) + f" {'torch packer':>16} {'best/torch':>10}")
    for rows, channels in SHAPES:
        x = torch.randn(rows, channels)
        out = torch.empty(rows, words_for(channels), dtype=torch.uint64)
        gbs = {}
        for v in variants:
            t = best_seconds(lambda: _C.bitpack(x, out, None, MODES["sign"], v), args.repeats, rounds=5)
            gbs[v] = (t, x.numel() * 4 / t / 1e9)
        t_torch = best_seconds(lambda: bitpack.pack(x), max(1, args.repeats // 20), rounds=5)
        best = min(t for t, _ in gbs.values())
        cells = " ".join(f"{t * 1e6:7.2f}us {g:5.1f}GB/s" for t, g in gbs.values())
        print(f"{rows:>6}x{channels:<5} {cells} {t_torch * 1e6:9.1f}us       {t_torch / best:9.0f}x")


if __name__ == "__main__":
    main()
