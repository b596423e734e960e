"""Several processes (``torchrun``): the process group and the collective decisions.

Every decision that must agree across ranks goes through here: rank 0's clock, the stop
flag, a skipped step, whether setup succeeded. In a single process every call is a no-op, so
the trainer has one code path.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import WordGPTError


@dataclass
class Dist:
    """This process's place among the training processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device | None = None
    """Set for a process group: the device this rank trains on."""

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def master(self) -> bool:
        return self.rank == 0

    def sync(self, values: list[float], ops: list[str]) -> list[float]:
        """All-reduce several numbers at once, each with its own op: ``max``, ``sum`` or
        ``rank0`` (every rank takes rank 0's value). One collective per call."""
        if not self.enabled:
            return list(values)
        sums = [v if op == "sum" else 0.0 for v, op in zip(values, ops, strict=True)]
        maxes = [
            (v if self.master else float("-inf")) if op == "rank0" else v if op == "max" else 0.0
            for v, op in zip(values, ops, strict=True)
        ]
        t = torch.tensor(sums + maxes, dtype=torch.float64, device=self.device)
        n = len(values)
        s, m = t[:n].clone(), t[n:].clone()
        dist.all_reduce(s, op=dist.ReduceOp.SUM)
        dist.all_reduce(m, op=dist.ReduceOp.MAX)
        return [float(s[i]) if op == "sum" else float(m[i]) for i, op in enumerate(ops)]

    def agree(self, error: BaseException | None) -> None:
        """Raise on every rank if setup failed on any: no rank is left waiting in a collective.
        The rank that failed raises its own error; the others a short one naming it."""
        failed = self.sync([1.0 if error is not None else 0.0], ["max"])[0] > 0
        if error is not None:
            raise error
        if failed:
            raise WordGPTError(f"rank {self.rank}: another rank failed during setup")

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def init(device: str = "auto") -> Dist:
    """Join the process group when started by ``torchrun`` (``WORLD_SIZE`` > 1): NCCL on
    CUDA (one GPU per local rank), gloo on the CPU, following the ``--device`` asked for
    (``--device cpu`` on a GPU machine trains on the CPU, with gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    backend = backend_for(device, torch.cuda.is_available())
    if not dist.is_initialized():
        dist.init_process_group(backend)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}") if backend == "nccl" else torch.device("cpu")
    if backend == "nccl":
        torch.cuda.set_device(device)
    return Dist(dist.get_rank(), dist.get_world_size(), local, device)


def backend_for(device: str, cuda: bool) -> str:
    """NCCL for CUDA (asked for, or auto with a GPU there), gloo for everything else."""
    wants_cuda = device.startswith("cuda") or device == "auto"
    return "nccl" if wants_cuda and cuda else "gloo"


def shutdown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        gc.collect()  # DDP wrappers still waiting for the collector go before their group
        dist.destroy_process_group()
