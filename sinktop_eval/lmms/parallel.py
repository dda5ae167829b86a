"""Data parallelism the way lmms-eval does it: one process per device, started by `torchrun` or `accelerate launch`.

The launcher sets RANK / WORLD_SIZE / LOCAL_RANK; lmms-eval shards every task's documents by rank and gathers
the scored samples to rank 0. This module holds the few things the model and the runner add on top:

    world()                  (rank, world_size, local_rank) from the launcher's variables
    rank_device(device)      cuda:<local_rank> for "auto"/"cuda" when several processes share a node
    accelerator()            accelerate's Accelerator, set up for the launch (gloo on CPU-only machines)
    all_gather(obj)          every rank's object, in rank order (a list of one when not distributed)
    barrier()                wait for every rank
    shutdown()               leave the process group together (at the end of a job)

Only the standard launchers' variables are read; nothing here starts processes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def world(environ: dict[str, str] | None = None) -> World:
    environ = os.environ if environ is None else environ
    size = int(environ.get("WORLD_SIZE", 1) or 1)
    rank = int(environ.get("RANK", 0) or 0)
    return World(rank=rank, size=size, local_rank=int(environ.get("LOCAL_RANK", rank) or 0))


def rank_device(device: Any) -> Any:
    """The device this rank should load onto: several processes on one node each take their own GPU."""
    import torch

    here = world()
    if not here.distributed or not torch.cuda.is_available():
        return device
    if device is None or str(device) in ("auto", "cuda"):
        return f"cuda:{here.local_rank}"
    return device


def accelerator():
    """accelerate's Accelerator for this launch (a process-wide singleton state).

    On a machine without CUDA, accelerate only sets up a multi-process (gloo) state when ACCELERATE_USE_CPU
    is set; `accelerate launch --multi_gpu` sets it, `torchrun` does not, so it is set here first.
    """
    import torch
    from accelerate import Accelerator

    here = world()
    if here.distributed and not torch.cuda.is_available():
        os.environ.setdefault("ACCELERATE_USE_CPU", "1")
    acc = Accelerator()
    if acc.num_processes != here.size:
        raise RuntimeError(f"WORLD_SIZE={here.size} but accelerate set up {acc.num_processes} process(es) "
                           "(an Accelerator was created before the launch variables were honoured); on a CPU-only "
                           "machine export ACCELERATE_USE_CPU=1 before the launcher, e.g. ACCELERATE_USE_CPU=1 "
                           "torchrun --nproc_per_node N ...")
    return acc


def _initialised() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def all_gather(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order; a collective: every rank must call it."""
    if not world().distributed:
        return [obj]
    import torch.distributed as dist

    if not _initialised():
        accelerator()
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    if world().distributed:
        import torch.distributed as dist

        if not _initialised():
            accelerator()
        dist.barrier()


def shutdown() -> None:
    """Leave the process group together: a rank that exits while another still uses the group can be aborted
    by the collective library ("terminate called without an active exception") and fail a finished job."""
    if world().distributed and _initialised():
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
