"""Integer GEMM (igemm: int16 activations x int8 weights, exact int32) per kernel variant vs torch FP32.

    .venv/bin/python benchmarks/bench_igemm.py [--repeats 10] [--rounds 7] [--variants a,b] [--reference]

Shapes (M x N x K) are the int8 layers of an exported model: the stems as im2col GEMMs (ResNet's 7x7/2
at 224: 112*112 pixels x 64 channels x 7*7*3; AlexNet's 11x11/4: 55*55 x 64 x 11*11*3) and batch-1
classifier heads (1 x 1000 classes x 512 or 4096 features, memory bound: the weights are read once).
Each variant runs on weights packed beforehand (_C.igemm_pack, as the engine packs at load), through
_C.igemm_packed on numpy arrays, without the binding's scan of the activations' values (check=False:
the kernel alone). The baseline is torch FP32 matmul of the same shape (its BLAS) on the same single
thread. Figure: median over rounds of the mean time of `repeats` back-to-back calls;
G MAC/s = M*N*K / time; "x torch" = torch's time / the variant's time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

import numpy as np
import torch

from onebit import _C, kernels
from onebit.timing import cpu_name

SHAPES = [(12544, 64, 147), (3025, 64, 363), (1, 1000, 512), (1, 1000, 4096)]


def median_round_seconds(fn: Callable[[], Any], repeats: int, rounds: int) -> float:
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        times.append((time.perf_counter() - start) / repeats)
    return statistics.median(times)


def operands(m: int, n: int, k: int, gen: torch.Generator):
    a = torch.randint(-127, 128, (m, k), generator=gen, dtype=torch.int16)
    w = torch.randint(-127, 128, (n, k), generator=gen, dtype=torch.int8)
    a_pad = torch.nn.functional.pad(a, (0, k % 2)).contiguous()
    panels = np.empty(_C.igemm_panel_bytes(n, k), dtype=np.int8)
    _C.igemm_pack(w.numpy(), panels)
    return a, w, a_pad.numpy(), panels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10, help="calls per timed round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds; the median is reported")
    parser.add_argument("--variants", default="", help="comma-separated; default: every runnable one")
    parser.add_argument("--reference", action="store_true", help="also time the (slow) reference")
    args = parser.parse_args()
    torch.set_num_threads(1)
    variants = kernels.selected_variants("igemm", args.variants, reference=args.reference)
    print(f"CPU: {cpu_name()}; ISAs: {kernels.available_isas()}; 1 thread; torch {torch.__version__} FP32 baseline")
    print(f"{'M x N x K':>18} {'torch fp32':>18} " + " ".join(f"{v:>28}" for v in variants))
    gen = torch.Generator().manual_seed(0)
    for m, n, k in SHAPES:
        a, w, a_pad, panels = operands(m, n, k, gen)
        out = np.empty((m, n), dtype=np.int32)
        expected = (a.long() @ w.long().T).to(torch.int32).numpy()
        af, wf = a.float(), w.float()
        outf = torch.empty(m, n)
        t_torch = median_round_seconds(lambda: torch.matmul(af, wf.T, out=outf), args.repeats, args.rounds)
        macs = m * n * k
        cells = []
        for v in variants:
            reps, rounds = (1, 1) if v == "reference" else (args.repeats, args.rounds)
            t = median_round_seconds(lambda: _C.igemm_packed(a_pad, panels, n, k, out, v, False), reps, rounds)
            if not np.array_equal(out, expected):
                raise AssertionError(f"{v} gave a wrong result on {m}x{n}x{k}")
            cells.append(f"{t * 1e6:9.1f}us {macs / t / 1e9:5.1f}G {t_torch / t:5.2f}x")
        print(f"{m:>6}x{n:<4}x{k:<6} {t_torch * 1e6:9.1f}us {macs / t_torch / 1e9:5.1f}G "
              + " ".join(f"{c:>28}" for c in cells))


if __name__ == "__main__":
    main()
