"""Wall-clock timing shared by the benchmarks, ``onebit bench``, ``onebit compare`` and the demo."""

from __future__ import annotations

import platform
import statistics
import time
from typing import Any, Callable

__all__ = ["best_seconds", "cpu_name", "median_seconds"]


def median_seconds(fn: Callable[[], Any], repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` calls, after ``warmup`` untimed calls."""
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
