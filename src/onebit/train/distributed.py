"""torch.distributed plumbing: process groups only under torchrun, sharded loaders, reductions.

``torchrun --nproc_per_node N -m onebit.cli train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK;
:func:`distributed` then joins the process group (nccl on CUDA, gloo on CPU). Without those
variables everything runs in one process and every helper here is a no-op.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Sampler

__all__ = ["DistInfo", "ShardSampler", "all_gather_objects", "all_reduce_sum", "distributed", "resolve_device",
           "shard_loader"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``, its ``device``; rank 0 writes files."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto``: this process's CUDA device when CUDA is available, else CPU; ``cuda``: cuda:LOCAL_RANK."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


@contextlib.contextmanager
def distributed(device: str = "auto") -> Iterator[DistInfo]:
    """Join (and on exit leave) the process group when launched by torchrun; reuse an existing one."""
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    owns = False
    if not dist.is_initialized() and "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        owns = True
    try:
        if dist.is_initialized():
            yield DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev)
        else:
            yield DistInfo(device=dev)
    finally:
        if owns:
            # Tear down together: a rank that destroys its gloo group while a peer is still using the
            # connection can make the peer's gloo thread abort ("terminate called without an active
            # exception", seen once in CI). The barrier is skipped when unwinding from an error, where a
            # peer may never arrive.
            gc.collect()  # free unreachable DDP reducers (and their gloo work) before the group goes
            if sys.exc_info()[0] is None:
                dist.barrier()
            dist.destroy_process_group()


class ShardSampler(Sampler[int]):
    """Indices rank, rank + world, rank + 2 world, ...: every sample exactly once over all ranks
    (DistributedSampler pads with repeats, which would skew evaluation)."""

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        self.indices = range(rank, length, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def shard_loader(loader: DataLoader | None, info: DistInfo, *, train: bool, seed: int) -> DataLoader | None:
    """``loader`` rebuilt over this rank's shard (DistributedSampler for training, :class:`ShardSampler`
    for evaluation); unchanged outside distributed runs or when it already has a distributed sampler."""
    if loader is None or not info.enabled or isinstance(loader.sampler, (DistributedSampler, ShardSampler)):
        return loader
    if loader.batch_size is None:
        raise ValueError("distributed training needs DataLoaders built with batch_size (not a batch_sampler), "
                         "or with a DistributedSampler already")
    if train:
        sampler: Sampler[int] = DistributedSampler(loader.dataset, info.world_size, info.rank, seed=seed,
                                                   shuffle=isinstance(loader.sampler, RandomSampler),
                                                   drop_last=loader.drop_last)
    else:
        sampler = ShardSampler(len(loader.dataset), info.rank, info.world_size)  # type: ignore[arg-type]
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler, num_workers=loader.num_workers,
                      collate_fn=loader.collate_fn, pin_memory=loader.pin_memory, drop_last=loader.drop_last,
                      worker_init_fn=loader.worker_init_fn, persistent_workers=loader.persistent_workers)


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` over all ranks (in place; a no-op without a process group)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def all_gather_objects(obj: object) -> list:
    """``[obj of rank 0, obj of rank 1, ...]``; ``[obj]`` without a process group."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return [obj]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
