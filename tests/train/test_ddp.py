"""Distributed training: two torchrun processes on gloo (CPU), and the sharding helpers."""

import csv
import os
import shutil
import subprocess
import sys

import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import onebit
from onebit.train.distributed import DistInfo, ShardSampler, shard_loader

TINY = """
model:
  name: small_cnn
  method: {input_quantizer: ste_sign, weight_quantizer: ste_sign, pad_value: 1.0}
  kwargs: {width: 8}
data: {name: synthetic, batch_size: 16, kwargs: {n: 256}}
optim: {lr: 1.0e-2}
epochs: 2
log: {every: 4, plot: false}
"""


def _teardown_abort(proc: subprocess.CompletedProcess) -> bool:
    """The run finished (rank 0 printed its summary) and then a rank aborted in C++ teardown."""
    return "done: best validation accuracy" in proc.stdout and \
        "terminate called without an active exception" in proc.stdout + proc.stderr


def test_two_processes_on_gloo(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY)
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "onebit.cli", "train", "--recipe", str(recipe), "--set", f"out_dir={run_dir}", "device=cpu"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and _teardown_abort(proc):
        # gloo's teardown race (a rank aborting at exit after training finished and saved; seen about once
        # in 30 CI runs, never reproduced locally; onebit.train.distributed mitigates it): one retry, so
        # that only a repeat, or any other failure, fails the test.
        print("gloo teardown abort after a finished run; retrying once")
        shutil.rmtree(run_dir)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # rank 0 alone prints and writes: one recipe, one summary line per epoch, one CSV row per epoch
    assert proc.stdout.count("# resolved recipe") == 1
    assert proc.stdout.count("epoch 2/2  train loss") == 1
    assert "step 8/8" in proc.stdout  # 256 samples / 2 ranks / batch 16: each rank sees half an epoch
    with open(run_dir / "metrics.csv", newline="") as f:
        assert len(list(csv.reader(f))) == 1 + 2
    last = onebit.load_checkpoint(run_dir / "last.pt")
    assert len(last["extra"]["rng"]) == 2  # both ranks' RNG states, for an exact resume
    assert sorted(os.listdir(run_dir)) == ["best.pt", "last.pt", "metrics.csv", "recipe.yaml"]


def test_shard_loader_splits_the_data():
    dataset = TensorDataset(torch.arange(10.0), torch.arange(10))
    train = DataLoader(dataset, batch_size=2, shuffle=True, drop_last=True)
    val = DataLoader(dataset, batch_size=4)
    single = DistInfo()
    assert shard_loader(train, single, train=True, seed=0) is train

    shards = []
    for rank in range(2):
        info = DistInfo(rank=rank, world_size=2)
        sharded = shard_loader(train, info, train=True, seed=0)
        assert isinstance(sharded.sampler, DistributedSampler) and sharded.batch_size == 2
        shards.append(list(sharded.sampler))
        val_shard = shard_loader(val, info, train=False, seed=0)
        assert isinstance(val_shard.sampler, ShardSampler)
        assert list(val_shard.sampler) == list(range(rank, 10, 2))
    assert sorted(shards[0] + shards[1]) == list(range(10))
