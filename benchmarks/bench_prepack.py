"""Engine latency with bconv2d weights packed at load vs repacked by the kernel on every call, in one run.

    .venv/bin/python benchmarks/bench_prepack.py [--models bireal18 reactnet_a binary_alexnet] [--threads 1 2]

The engine packs a bconv2d's weights once at load when the dispatched bgemm would otherwise repack
them on every call (AVX2 ntab, AVX-512 nvec; ONEBIT_ENGINE_PREPACK=0 turns that off). Both engines
are loaded from the same exported zoo model (as bench_engine.py builds it; batch 1, random weights:
timing does not depend on their values) and timed in interleaved rounds; the figure is the best round of each.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import onebit
from bench_engine import build  # the zoo models as bench_engine builds them (default method each)
from bench_engine_ab import engines as engines_under  # one engine per load-time setting
from onebit.export import export
from onebit.timing import best_seconds, cpu_name


def engines(model_name: str, threads: int) -> dict[str, onebit.Engine]:
    torch.manual_seed(0)
    model, _, shape = build(model_name)
    blob = export(model, torch.randn(1, *shape))
    pair = engines_under(blob, ["ONEBIT_ENGINE_PREPACK=1", "ONEBIT_ENGINE_PREPACK=0"], threads, control=False)
    return {label.rpartition("=")[2]: engine for label, engine in pair.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["bireal18", "reactnet_a", "binary_alexnet"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=10, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}; ISA {onebit.kernels.active_isa()}")
    for name in args.models:
        for threads in args.threads:
            pair = engines(name, threads)
            x = np.random.default_rng(0).standard_normal((1, *pair["1"].input_shape)).astype(np.float32)
            best = {flag: float("inf") for flag in pair}
            for _ in range(args.rounds):
                for flag, engine in pair.items():
                    best[flag] = min(best[flag], best_seconds(lambda: engine(x), args.repeats, rounds=1))
            on, off = best["1"], best["0"]
            print(f"{name:16} {threads}T  packed at load {on * 1e3:7.2f} ms  repacked per call {off * 1e3:7.2f} ms"
                  f"  gain {100 * (off - on) / off:5.1f} %  packed weights {pair['1'].packed_weight_bytes / 2**20:.2f} MiB")


if __name__ == "__main__":
    main()
