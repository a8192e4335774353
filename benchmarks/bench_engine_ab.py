"""Engine latency under load-time settings (environment variables read when an Engine is built), in one run.

    .venv/bin/python benchmarks/bench_engine_ab.py [--models reactnet_a bireal18] [--threads 1 2]
        [--quantize int8] [--rounds 40] [--repeats 3]
        [--env ONEBIT_ENGINE_FUSE=0 ONEBIT_ENGINE_FUSE=stages ...]

One engine per setting is built from the same exported zoo model (as bench_engine.py builds it; batch 1,
random weights: timing does not depend on their values), plus a second engine with the first setting as
a control: the gap between the two first-setting engines is the run's noise. Rounds interleave every
engine (each: one warm-up call, then --repeats timed calls); the figures are the median and the best of
the per-round means, and each setting's median against the first setting's.

Settings used in BENCHMARKS.md: ONEBIT_ENGINE_FUSE (stages, pool, one_pass, from_acc: which fusion
steps the engine takes; csrc/engine/engine.cpp) and ONEBIT_ENGINE_PREPACK=0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

import onebit
from bench_engine import build  # the zoo models as bench_engine builds them (default method each)
from onebit.export import export
from onebit.timing import cpu_name

DEFAULT_ENV = ["ONEBIT_ENGINE_FUSE=1", "ONEBIT_ENGINE_FUSE=0", "ONEBIT_ENGINE_FUSE=stages",
               "ONEBIT_ENGINE_FUSE=stages,one_pass", "ONEBIT_ENGINE_FUSE=stages,one_pass,from_acc"]


def engines(blob: bytes, settings: list[str], threads: int, control: bool = True) -> dict[str, onebit.Engine]:
    """One engine per KEY=VALUE setting (read by the Engine at load), plus the first again as a control."""
    out = {}
    for label in [*settings, settings[0] + " (control)"] if control else settings:
        key, _, value = label.split(" ")[0].partition("=")
        saved = os.environ.get(key)
        os.environ[key] = value
        try:
            out[label] = onebit.Engine(blob, num_threads=threads)
        finally:
            if saved is None:
                os.environ.pop(key)
            else:
                os.environ[key] = saved
    return out


def measure(group: dict[str, onebit.Engine], rounds: int, repeats: int) -> dict[str, list[float]]:
    x = np.random.default_rng(0).standard_normal((1, *next(iter(group.values())).input_shape)).astype(np.float32)
    times: dict[str, list[float]] = {label: [] for label in group}
    for _ in range(rounds):
        for label, engine in group.items():
            engine(x)
            t0 = time.perf_counter()
            for _ in range(repeats):
                engine(x)
            times[label].append((time.perf_counter() - t0) / repeats)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["reactnet_a", "bireal18"])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--quantize", default="int8", choices=["none", "int8"])
    p.add_argument("--env", nargs="+", default=DEFAULT_ENV, help="KEY=VALUE settings; the first is the baseline")
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print(f"# CPU: {cpu_name()}; ISA {onebit.kernels.active_isa()}; load {os.getloadavg()[0]:.2f}; "
          f"{args.rounds} rounds x {args.repeats} calls; {args.quantize} file")
    for name in args.models:
        torch.manual_seed(0)
        model, _, shape = build(name)
        with torch.no_grad():
            blob = export(model, torch.randn(1, *shape), quantize=None if args.quantize == "none" else args.quantize)
        for threads in args.threads:
            times = measure(engines(blob, args.env, threads), args.rounds, args.repeats)
            base = statistics.median(times[args.env[0]])
            for label, ts in times.items():
                med = statistics.median(ts)
                print(f"{name:16} {threads}T  {label:52} median {med * 1e3:7.2f} ms  best {min(ts) * 1e3:7.2f} ms"
                      f"  vs first {100 * (med - base) / base:+6.1f} %", flush=True)


if __name__ == "__main__":
    main()
