"""Process groups under torchrun: rank and world size, teardown, and the one reduction the loop
needs (a loss mean for logging). Collectives run on the tensors' own device: NCCL has no CPU
backend, so a CPU tensor all-reduced on an NCCL group fails on the first step."""

from __future__ import annotations

import os

import torch


def local_device(device: str | None, world: int) -> torch.device:
    """The device this process trains on: ``cuda:LOCAL_RANK`` under torchrun on GPUs (also made
    the current device, so NCCL and autocast agree), ``cpu`` otherwise."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) if world > 1 else (dev.index or 0))
        torch.cuda.set_device(dev)
    return dev


def rank_and_world() -> tuple[int, int]:
    """(rank, world size); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    # under torchrun a process group exists even for one process, so that FSDP2 (parallel: fsdp)
    # and sharded checkpoints run the same code on one GPU as on many
    if world <= 1 and "TORCHELASTIC_RUN_ID" not in os.environ:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        import atexit

        if torch.cuda.is_available():
            # the GPU first, so NCCL binds to it; CPU tensors (checkpoint coordination) go over gloo
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("cpu:gloo,cuda:nccl")
        else:
            dist.init_process_group("gloo")
        # tear the group down before the interpreter exits: a gloo group still alive at exit can
        # abort the process ("terminate called without an active exception")
        atexit.register(_shutdown_group)
    return dist.get_rank(), world


def group_ready() -> bool:
    """Whether a process group is up (torchrun, of any size)."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def _shutdown_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def global_sums(t: torch.Tensor) -> torch.Tensor:
    """Element-wise sum of ``t`` over all ranks, reduced on ``t``'s own device (NCCL: the GPU)."""
    import torch.distributed as dist

    t = t.detach().float().clone()
    dist.all_reduce(t)
    return t


def global_max(t: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum of ``t`` over all ranks, on ``t``'s own device."""
    import torch.distributed as dist

    t = t.detach().clone()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t
