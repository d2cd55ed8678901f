"""Multi-process training with PyTorch's own engine: `torchrun --nproc-per-node N`.

torchrun starts N copies of a stage and sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous
variables; `init_from_env` joins them into one process group (NCCL on GPUs, gloo on CPU) and
gives each process its device (cuda:LOCAL_RANK). Run without torchrun, everything here is a no-op:
world size 1, rank 0. Rank 0 alone writes files and MLflow runs; the training loops shard each
global batch over the ranks, so a run's result does not depend on N beyond noise.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from pipeline.errors import PipelineError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device: torch.device) -> Dist:
    """Join the torchrun process group if there is one; `device` is the resolved params device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=device)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise PipelineError(
                f"torchrun: LOCAL_RANK {local} but only {torch.cuda.device_count()} GPU(s) visible; "
                f"use --nproc-per-node <= the number of GPUs"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=rank, world_size=world, device=device)


_LOCAL = [False]


@contextlib.contextmanager
def local() -> Iterator[None]:
    """Work that one rank does alone (rank 0's quality metrics): no DDP, no collectives inside."""
    before, _LOCAL[0] = _LOCAL[0], True
    try:
        yield
    finally:
        _LOCAL[0] = before


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[Dist]:
    """`init_from_env` for the duration of a stage, then leave the group (a no-op alone)."""
    world = init_from_env(device)
    try:
        yield world
    finally:
        shutdown()


def current() -> Dist:
    """The process group this process is in (world size 1 outside torchrun and inside `local`)."""
    if _LOCAL[0] or not (dist.is_available() and dist.is_initialized()):
        return Dist()
    return Dist(rank=dist.get_rank(), world_size=dist.get_world_size())


def per_rank_batch(batch_size: int, world_size: int, key: str) -> int:
    """Each rank's share of a global batch; the global batch must split evenly."""
    if batch_size % world_size:
        raise PipelineError(
            f"{key}: {batch_size} does not split over {world_size} processes; use a multiple of "
            f"the torchrun --nproc-per-node count"
        )
    return batch_size // world_size


def mean_over_ranks(t: torch.Tensor) -> torch.Tensor:
    if current().world_size > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= dist.get_world_size()
    return t


def gather_objects(obj: object) -> list[object]:
    """Every rank's `obj`, in rank order (just [obj] outside torchrun)."""
    if current().world_size == 1:
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def wrap_ddp(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`module` in DistributedDataParallel (gradients averaged over the ranks in backward)."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        module, device_ids=[device.index] if device.type == "cuda" else None)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
