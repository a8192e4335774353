"""onebit.Engine under concurrent use: many threads calling one engine, and threads building, calling and
dropping their own engines at the same time, all on random inputs of varied batch sizes, must give
bitwise the results of serial calls (docs/reliability.md).

The C++ engine releases the GIL for the whole run, so the threads really overlap: shared engines
exercise the arena pool (each call borrows its own arena) and the persistent thread pool (a call that
finds it busy runs its work inline); private engines exercise construction and destruction next to
running calls. The default tier runs a few seconds; ``-m slow`` runs longer and on more models.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import onebit
from onebit.export import export
from export.toy_models import build


def exported(name: str, quantize: str | None = None):
    model, x = build(name)
    with torch.no_grad():
        return export(model, x, quantize=quantize), tuple(x.shape[1:])


def stress(blob: bytes, in_shape: tuple, *, threads: int, rounds: int, inputs: int, seed: int = 0) -> int:
    """Run the stress pattern; returns how many concurrent calls were checked. Fails on any mismatch."""
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((int(rng.integers(1, 6)), *in_shape)).astype(np.float32) for _ in range(inputs)]
    serial = onebit.Engine(blob)
    want = [serial(x) for x in xs]
    shared = [onebit.Engine(blob), onebit.Engine(blob, num_threads=2)]
    barrier = threading.Barrier(threads)
    errors: list[str] = []
    checked = [0] * threads

    def work(t: int) -> None:
        local = np.random.default_rng(seed * 1000 + t)
        try:
            barrier.wait()
            own = None
            for r in range(rounds):
                if r % 3 == 0:  # build a private engine (dropping the previous one) while others run
                    own = onebit.Engine(blob, num_threads=1 + (t + r) % 2)
                for engine in (shared[(t + r) % 2], own):
                    i = int(local.integers(inputs))
                    x = xs[i] if local.random() < 0.5 else torch.from_numpy(xs[i])
                    y = engine(x)
                    y = y.numpy() if isinstance(y, torch.Tensor) else y
                    if not np.array_equal(y, want[i]):
                        errors.append(f"thread {t} round {r} input {i}: max diff {np.abs(y - want[i]).max()}")
                    checked[t] += 1
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(f"thread {t}: {type(exc).__name__}: {exc}")

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join(timeout=300)
    assert not any(th.is_alive() for th in pool), "a thread hung"
    assert errors == [], errors[:5]
    for x, y in zip(xs, want):  # the shared engines still agree after the storm
        for engine in shared:
            np.testing.assert_array_equal(engine(x), y)
    return sum(checked)


def test_eight_threads_match_serial_calls():
    blob, in_shape = exported("reactnet")
    assert stress(blob, in_shape, threads=8, rounds=12, inputs=6) == 8 * 12 * 2


def test_int8_layers_under_concurrent_calls():
    """qconv2d / qlinear keep the quantized sample in a per-call shared buffer (part of the call's arena)."""
    blob, in_shape = exported("bireal", quantize="int8")
    assert stress(blob, in_shape, threads=4, rounds=6, inputs=4, seed=2) == 4 * 6 * 2


def test_fused_stem_pool_under_concurrent_calls():
    """An int8 stem with its max-pool fused (fused_pool.cpp): each call's threads keep their ring of conv
    rows in their own scratch of the call's arena."""
    blob, in_shape = exported("maxpool_bits", quantize="int8")
    prof = onebit.Engine(blob).profile(np.zeros((1, *in_shape), np.float32))
    assert [s for k, _, s in prof if k == "maxpool"] == [0.0]
    assert stress(blob, in_shape, threads=4, rounds=6, inputs=4, seed=3) == 4 * 6 * 2


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reactnet", "bireal", "groups", "binary_linear", "maxpool_bits"])
def test_many_threads_match_serial_calls_slow(name):
    blob, in_shape = exported(name)
    assert stress(blob, in_shape, threads=16, rounds=60, inputs=16, seed=1) == 16 * 60 * 2
