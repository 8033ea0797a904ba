"""Several processes under ``torchrun``: who this process is, and what all of them must agree on."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from expolib.config import Runtime


@dataclass(frozen=True)
class Process:
    """This process's place in a ``torchrun`` job (rank 0 of 1 without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(runtime: Runtime) -> Process:
    """Join the process group that ``torchrun`` describes (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_*);
    one process when WORLD_SIZE is unset or 1. NCCL between GPUs (each process on the runtime's
    device, its own), Gloo between CPU processes."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Process()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = runtime.device.type == "cuda"
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if use_cuda and max(local_rank + 1, local_world) > torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ValueError(
            f"--nproc_per_node: torchrun started {local_world} processes on this machine, which has {count} "
            f"GPU(s); start at most {count}, or pass --device cpu for CPU processes"
        )
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(runtime.device)
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Process(dist.get_rank(), dist.get_world_size(), local_rank)


def stop_agreed(asked: bool, process: Process, device: torch.device) -> bool:
    """Whether to stop now: a stop ``asked`` in any process stops all of them at the same step (the checkpoint
    is a collective)."""
    if process.world_size == 1:
        return asked
    where = device if dist.get_backend() == "nccl" else "cpu"
    flag = torch.tensor([float(asked)], device=where)
    dist.all_reduce(flag)
    return bool(flag.item() > 0)


def gather(value: Any, process: Process) -> list[Any]:
    """``value`` from every process, in rank order (all processes must call this)."""
    if process.world_size == 1:
        return [value]
    values: list[Any] = [None] * process.world_size
    dist.all_gather_object(values, value)
    return values


def leave() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["Process", "gather", "init_distributed", "leave", "stop_agreed"]
