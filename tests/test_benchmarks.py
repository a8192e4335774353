"""The benchmark scripts still run (slow tier): each once with the smallest settings, as a subprocess.

They measure, so nothing here checks a time; only that the script finishes and prints its rows."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPTS = {
    "bench_igemm.py": (["--repeats", "1", "--rounds", "1"], "12544x64"),
    "bench_bgemm.py": (["--repeats", "1"], "3136x64"),
    "bench_bconv2d_threads.py": (["--rounds", "1", "--threads", "1", "2"], "| 7x7x512 | 2 |"),
    "bench_engine.py": (["--models", "vgg_small", "--threads", "1", "--repeats", "1", "--quantize", "none", "int8"],
                        "vgg_small [int8]"),
    "bench_prepack.py": (["--models", "vgg_small", "--threads", "1", "--repeats", "1", "--rounds", "1"],
                         "packed at load"),
    "bench_bgemm.py --mode and": (["--repeats", "1", "--mode", "and"], "49x512"),
    "bench_engine_ab.py": (["--models", "vgg_small", "--threads", "1", "--rounds", "2", "--repeats", "1"],
                           "ONEBIT_ENGINE_FUSE=1 (control)"),
}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_benchmark_script_runs(script):
    args, expect = SCRIPTS[script]
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script.split()[0]), *args], capture_output=True,
                         text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert expect in out.stdout, out.stdout[-2000:]
