"""Distributed training under torchrun: one process per device; one process needs no launcher.

`fit_classifier` and `train_gan` call init_distributed themselves, so the library and the CLI
agree on the job; every helper below is a no-op in a single process.
"""

from __future__ import annotations

import atexit
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch

from ganaug import InputError
from ganaug.runtime.logs import set_quiet

log = logging.getLogger("ganaug")


@dataclass(frozen=True)
class DistInfo:
    rank: int  # this process's place in the job; 0 is the main process (it writes the files)
    world: int  # processes in the job; 1 = not distributed
    local_rank: int  # place on this machine: rank r trains on cuda:local_rank


def dist_info() -> DistInfo:
    """torchrun's RANK, WORLD_SIZE and LOCAL_RANK; without a launcher (0, 1, 0)."""
    env = os.environ
    return DistInfo(
        int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))
    )


def distributed() -> bool:
    """True once init_distributed joined a job of more than one process."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def init_distributed(device: torch.device) -> torch.device:
    """Join the torchrun job when WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA); idempotent.

    Returns this rank's device (cuda:LOCAL_RANK for a plain `cuda`); one process gets `device`
    back and nothing is initialised. Ranks > 0 log warnings only and show no progress bars.
    """
    info = dist_info()
    if info.world <= 1:
        return device
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", info.local_rank)
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"device {device}: multi-process runs need cpu or cuda devices")
    if not distributed():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_leave_distributed)
        log.debug("rank %d of %d on %s", info.rank, info.world, device)
    if info.rank > 0:
        set_quiet(True)
        logging.getLogger("ganaug").setLevel(logging.WARNING)
    return device


def _leave_distributed() -> None:
    if distributed():
        torch.distributed.destroy_process_group()


def is_main() -> bool:
    """True in the process that writes files, logs and checkpoints (rank 0, or the only one)."""
    return dist_info().rank == 0


def barrier() -> None:
    """Wait for every rank (e.g. while rank 0 evaluates and writes); no-op in one process."""
    if distributed():
        torch.distributed.barrier()


def all_reduce_mean_grads(module: torch.nn.Module) -> None:
    """Average `module`'s gradients over the ranks in one flat all-reduce (StyleGAN3's loop).

    Call after backward and before optimiser.step; parameters without a gradient are left out
    (the same ones on every rank, as every rank runs the same code).
    """
    if not distributed():
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= torch.distributed.get_world_size()
    for grad, part in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
        grad.copy_(part.view_as(grad))


@torch.no_grad()
def broadcast_params(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if distributed():
        for tensor in [*module.parameters(), *module.buffers()]:
            torch.distributed.broadcast(tensor, src=0)


def broadcast_from_main(tensor: torch.Tensor) -> torch.Tensor:
    """Rank 0's `tensor` on every rank (in place; same shape and dtype everywhere)."""
    if distributed():
        torch.distributed.broadcast(tensor, src=0)
    return tensor


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of `tensor` over the ranks (in place)."""
    if distributed():
        torch.distributed.all_reduce(tensor)
    return tensor


def all_finite(value: torch.Tensor) -> bool:
    """Whether `value` is finite on every rank: ranks agree on skipping or stopping, so no rank
    waits in an all-reduce that another one left."""
    flag = torch.isfinite(value.detach()).all().to(torch.int32)
    if distributed():
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item())


def gather_objects(obj: Any) -> list[Any]:
    """`obj` of every rank, in rank order (pickled in memory only); [obj] in one process."""
    if not distributed():
        return [obj]
    out: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, obj)
    return out
