"""Wall-clock timing shared by the benchmarks, ``onebit bench``, ``onebit compare`` and the demo."""

from __future__ import annotations

import platform
import statistics
import sys
import time
import warnings
from typing import Any, Callable

__all__ = ["best_seconds", "cpu_name", "median_seconds"]


def _warn_if_emulated() -> None:
    # The test-only build (scripts/test_avx512_emulated.sh) runs its AVX-512 kernels on SIMDe.
    ext = sys.modules.get("onebit._C")
    if ext is not None and getattr(ext, "avx512_emulated", False):
        warnings.warn("this onebit build emulates AVX-512 for tests (ONEBIT_EMULATE_AVX512): its timings "
                      "say nothing about any real CPU", RuntimeWarning, stacklevel=3)


def median_seconds(fn: Callable[[], Any], repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` calls, after ``warmup`` untimed calls."""
    _warn_if_emulated()
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def best_seconds(fn: Callable[[], Any], repeats: int, rounds: int = 7) -> float:
    """Seconds per call of ``fn()``: the best of ``rounds`` rounds of ``repeats`` back-to-back calls,
    after one untimed call (the kernel benchmarks' figure: least disturbed by other processes)."""
    _warn_if_emulated()
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo), for benchmark headers."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()
