"""A real SIGKILL in the middle of an epoch, then ``onebit train --resume``: the run ends exactly
where an uninterrupted run ends (bitwise equal weights and metrics, same seed, one thread).

Unlike test_fit's in-process simulation, this kills the process from outside (no ``finally``,
no flush), so it also covers the CLI and the atomic checkpoint writes; the slow variant resumes in
fresh interpreters only (RNG states restored from disk alone), killed once per epoch.
"""

import csv
import os
import signal
import subprocess
import sys

import pytest
import torch

import onebit
from onebit.cli import main

# 8x8 synthetic task, 32 steps per epoch (512 samples, batch 16): an epoch lasts long enough to be
# killed inside it. Shift augmentation, shuffling and warm-up all depend on restored state.
RECIPE = """
model:
  name: small_cnn
  method: {input_quantizer: ste_sign, weight_quantizer: ste_sign, pad_value: 1.0}
  kwargs: {width: 8}
data: {name: synthetic, batch_size: 16, augment: shift}
optim: {lr: 1.0e-2}
schedule: {name: cosine, warmup_epochs: 0.5}
epochs: 3
seed: 7
log: {every: 1, plot: false, tensorboard: false}
"""
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def command(recipe, out_dir, *extra):
    return [sys.executable, "-m", "onebit.cli", "train", "--recipe", str(recipe), "--set", f"out_dir={out_dir}",
            *extra]


def start(recipe, out_dir, *extra):
    return subprocess.Popen(command(recipe, out_dir, *extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=ENV)


def finish(proc, timeout=300):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def kill_when(proc, marker):
    """Read the child's output until ``marker`` appears, then SIGKILL it; returns what it printed."""
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if marker in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(lines)
    return "".join(lines)


def metrics_without_seconds(out_dir):
    with open(os.path.join(out_dir, "metrics.csv"), newline="") as f:
        rows = list(csv.reader(f))
    drop = rows[0].index("seconds")
    return [[cell for i, cell in enumerate(row) if i != drop] for row in rows]


IGNORED = {"seconds", "recipe"}  # wall time; the recipe text names the (different) out_dir


def assert_same(a, b, where="checkpoint"):
    """Bitwise equality of nested checkpoint contents (tensors, optimizer and RNG states, history)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            if key not in IGNORED:
                assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_checkpoint(a, b):
    assert_same(onebit.load_checkpoint(a), onebit.load_checkpoint(b))


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted_run(tmp_path, capsys):
    """Only the killed run is a subprocess (it must die from outside); the reference and the resumed
    run use the CLI in this process, on one thread like the child, to save two interpreter starts."""
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(RECIPE)
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"

    printed = kill_when(start(recipe, killed_dir, "epochs=2"), "epoch 2/2 step 3/32")
    assert "epoch 1/2  train loss" in printed and "epoch 2/2  train loss" not in printed  # killed inside epoch 2
    assert onebit.load_checkpoint(killed_dir / "last.pt")["extra"]["epoch"] == 1
    assert len(metrics_without_seconds(killed_dir)) == 1 + 1

    assert main(command(recipe, killed_dir, "epochs=2", "--resume")[3:]) == 0
    resumed = capsys.readouterr().out
    assert "resumed from" in resumed and "after epoch 1" in resumed
    assert main(command(recipe, reference_dir, "epochs=2")[3:]) == 0
    reference_out = capsys.readouterr().out

    assert_same_checkpoint(reference_dir / "last.pt", killed_dir / "last.pt")
    assert_same_checkpoint(reference_dir / "best.pt", killed_dir / "best.pt")
    assert metrics_without_seconds(reference_dir) == metrics_without_seconds(killed_dir)
    assert resumed.strip().splitlines()[-1].split(";")[0] == reference_out.strip().splitlines()[-1].split(";")[0]
    assert not [p for p in os.listdir(killed_dir) if p.startswith(".tmp-")]  # no half-written checkpoint left


@pytest.mark.slow
def test_repeated_sigkills_then_resume_equals_uninterrupted_run(tmp_path):
    """Killed in every epoch (and once during the first), resumed each time."""
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(RECIPE)
    reference = start(recipe, tmp_path / "reference")
    run_dir = tmp_path / "killed"
    kill_when(start(recipe, run_dir), "epoch 1/3 step 10/32")  # before any checkpoint: resume starts fresh
    for epoch in (1, 2, 3):
        kill_when(start(recipe, run_dir, "--resume"), f"epoch {epoch}/3 step 20/32")
    finish(start(recipe, run_dir, "--resume"))
    finish(reference)
    assert_same_checkpoint(tmp_path / "reference" / "last.pt", run_dir / "last.pt")
    assert metrics_without_seconds(tmp_path / "reference") == metrics_without_seconds(run_dir)
