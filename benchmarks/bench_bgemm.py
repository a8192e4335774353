"""Binary GEMM throughput per kernel variant vs the roofline, on pre-packed operands, in one run.

    .venv/bin/python benchmarks/bench_bgemm.py [--repeats 20] [--mode xor|and] [--variants a,b]

Variants that repack B on every call (bgemm_packing: AVX2 ntab, AVX-512 nvec) are timed twice: as
called (repacking B each time) and on B packed beforehand (`<variant>+packed`), as the engine runs
them on its weights.

Shapes are the GEMMs of ResNet-18's 3x3 convolutions at batch 1 (M = output pixels,
N = output channels, K = 9 x input channels). The figure of merit is binary MAC/s = M*N*K / time,
against the measured roofline of xor + popcount + add on 512-bit registers: 1.21e12 binary MAC/s
per core (DESIGN.md section 6). The kernel runs through the binding on one thread (the kernels
are single-threaded). Operands are passed as numpy arrays: the binding then costs ~1.3 us a call,
against ~7 us for torch tensors (DLPack export), which would be 5% of the fastest calls here.
"""

from __future__ import annotations

import argparse

import torch

from onebit import _C, kernels
from onebit.bitpack import words_for
from onebit.timing import best_seconds, cpu_name

ROOFLINE = 1.21e12  # binary MAC/s per core
SHAPES = [(3136, 64, 576), (784, 128, 1152), (196, 256, 2304), (49, 512, 4608)]
MODES = {"xor": 0, "and": 1}




def random_rows(rows: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """Random packed rows with k bits (padding bits of the last word cleared)."""
    words = torch.randint(-(2**62), 2**62, (rows, words_for(k)), generator=gen, dtype=torch.int64)
    words = words ^ (torch.randint(0, 2, (rows, words_for(k)), generator=gen, dtype=torch.int64) << 63)
    if k % 64:
        words[:, -1] &= (1 << (k % 64)) - 1
    return words.view(torch.uint64).contiguous()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20, help="calls per timed round (best of 7 rounds)")
    parser.add_argument("--mode", choices=sorted(MODES), default="xor")
    parser.add_argument("--variants", default="", help="comma-separated; default: every runnable one")
    parser.add_argument("--reference", action="store_true", help="also time the (slow) reference")
    args = parser.parse_args()
    torch.set_num_threads(1)
    variants = kernels.selected_variants("bgemm", args.variants, reference=args.reference)
    variants = [x for v in variants for x in ([v, v + "+packed"] if _C.bgemm_packed_bytes(1, 64, v) else [v])]
    print(f"CPU: {cpu_name()}; ISAs: {kernels.available_isas()}; 1 thread; mode {args.mode}; "
          f"roofline {ROOFLINE / 1e9:.0f} G binary MAC/s")
    print(f"{'M x N x K':>18} " + " ".join(f"{v:>22}" for v in variants))
    gen = torch.Generator().manual_seed(0)
    for m, n, k in SHAPES:
        a, b = random_rows(m, k, gen).numpy(), random_rows(n, k, gen).numpy()
        out = torch.empty(m, n, dtype=torch.int32).numpy()
        cells = []
        for name in variants:
            v, packed = name.removesuffix("+packed"), name.endswith("+packed")
            packed_b = kernels.bgemm_pack(b, k, variant=v) if packed else None
            reps = 1 if v == "reference" else args.repeats
            t = best_seconds(lambda: _C.bgemm(a, b, out, k, MODES[args.mode], v, packed_b), reps,
                             rounds=1 if v == "reference" else 7)
            rate = m * n * k / t
            cells.append(f"{t * 1e6:8.1f}us {rate / 1e9:5.0f}G {rate / ROOFLINE:4.0%}")
        print(f"{m:>6}x{n:<4}x{k:<6} " + " ".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
    main()
