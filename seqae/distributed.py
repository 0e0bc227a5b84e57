"""Data-parallel training across processes launched by torchrun (gloo: training runs on the CPU).

Every rank walks the same global sequence of batches; of the `grad_accum` batches of one optimizer step, rank r
computes those at positions r, r + W, r + 2W, ... Gradients are summed across ranks, so a step's update is the
same whatever the world size W (up to floating-point summation order) and the data position (epoch, batch) is
global: a run checkpointed with 2 processes resumes with 1, and the reverse.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, micro_batch: int) -> bool:
        """Whether this rank computes the micro-batch at this position of an optimizer step."""
        return micro_batch % self.size == self.rank


def setup() -> World:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1); else a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")  # training runs on the CPU (tensors are CPU tensors)
    return World(rank=dist.get_rank(), size=dist.get_world_size(), backend=dist.get_backend())


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def sum_gradients(model: torch.nn.Module, world: World) -> None:
    """Sum every parameter's gradient over the ranks (one flat buffer; a missing gradient counts as zero)."""
    if world.size == 1:
        return
    params = [p for p in model.parameters() if p.requires_grad]
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset: offset + n].view_as(p).clone()
        offset += n


def sum_values(values: list[float], world: World) -> list[float]:
    """Element-wise sum of a list of floats over the ranks."""
    if world.size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def shutdown(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
