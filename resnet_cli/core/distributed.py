"""Data-parallel training with :class:`~torch.nn.parallel.DistributedDataParallel` under ``torchrun``::

    torchrun --standalone --nproc_per_node=4 -m resnet_cli.cli.train data.batch_size=512 ...

:func:`process_group` joins the group from torchrun's variables (NCCL on CUDA, gloo on the CPU);
without them everything here is a no-op. Every rank draws the same global batch of
``data.batch_size`` and trains on its slice (:class:`ShardedBatches`), so a step sees the mean
loss's gradient over the global batch; rank 0's BatchNorm buffers are broadcast before each
evaluation, and an EMA's are averaged over ranks (:func:`distribute_bn`); sums are all-reduced; only
rank 0 writes files (:func:`hydra_overrides_for_rank`).
Sources: PyTorch "Getting Started with Distributed Data Parallel" and the torchrun docs.
"""

from __future__ import annotations

import atexit
import logging
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError

log = logging.getLogger("resnet_cli")


@dataclass(frozen=True)
class World:
    """This process's place in the job: ``rank`` in 0..world_size-1, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only process that writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when several processes train together."""
        return self.world_size > 1


def env_world() -> World:
    """The :class:`World` of torchrun's ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (default: one process);
    ConfigError if the variables are not integers or are inconsistent."""
    try:
        world = World(rank=int(os.environ.get("RANK", 0)), world_size=int(os.environ.get("WORLD_SIZE", 1)),
                      local_rank=int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError:
        raise ConfigError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (they are set by torchrun)") from None
    if not (world.world_size >= 1 and 0 <= world.rank < world.world_size and world.local_rank >= 0):
        raise ConfigError(f"inconsistent torchrun environment: RANK={world.rank} WORLD_SIZE={world.world_size} "
                          f"LOCAL_RANK={world.local_rank}")
    return world


def current() -> World:
    """The :class:`World` of the initialised process group, else a single process."""
    if dist.is_available() and dist.is_initialized():
        return World(rank=dist.get_rank(), world_size=dist.get_world_size(),
                     local_rank=int(os.environ.get("LOCAL_RANK", 0)))
    return World()


@contextmanager
def process_group(device_name: str, multirun: bool = False) -> Iterator[World]:
    """Join the torchrun process group for a run, yielding this process's :class:`World` (no-op for
    one process). ``device_name``: ``trainer.device``; on CUDA, process ``LOCAL_RANK`` is bound to
    ``cuda:LOCAL_RANK``. ``multirun``: the run is a job of a sweep. ConfigError for a bad device, fewer
    visible GPUs than processes on this node, or a multirun (``-m``) under torchrun.
    """
    from .precision import resolve_device

    world = env_world()
    if not world.distributed:
        yield world
        return
    if multirun:
        raise ConfigError("torchrun trains one run with several processes; for a sweep (-m) leave torchrun out "
                          "and use a launcher (hydra/launcher=joblib|submitit_slurm)")
    device = resolve_device(device_name)
    if device.type == "cuda":
        if world.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK={world.local_rank} but only {torch.cuda.device_count()} GPUs are visible: "
                              "use torchrun --nproc_per_node <= the number of GPUs")
        torch.cuda.set_device(world.local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, init_method="env://")
    if world.is_main:
        log.info("distributed: %d processes, backend %s", world.world_size, backend)
    try:
        yield world
    finally:
        dist.destroy_process_group()


def hydra_overrides_for_rank(world: World | None = None) -> list[str]:
    """Hydra overrides that stop a rank other than 0 from writing: a private temporary run folder
    (removed at exit; kept with a warning if something wrote into it), no ``.hydra/``, no log file."""
    world = world or env_world()
    if world.is_main:
        return []
    scratch = tempfile.mkdtemp(prefix=f"resnet-cli-rank{world.rank}-")

    def _cleanup() -> None:
        try:
            os.rmdir(scratch)
        except OSError:
            if os.path.isdir(scratch):
                log.warning("rank %d wrote files into %s; only rank 0 should write", world.rank, scratch)

    atexit.register(_cleanup)
    return [f"hydra.run.dir={scratch}", "hydra.output_subdir=null", "hydra/job_logging=disabled",
            "hydra/hydra_logging=disabled"]


def all_reduce_sums(*values: torch.Tensor | float | int, device: torch.device) -> list[float]:
    """Sum each value over all ranks (float64); returns Python floats. One collective call."""
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    if dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` as held by rank ``src`` (picklable objects), on every rank."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


@torch.no_grad()
def broadcast_buffers(model: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (BatchNorm running statistics) to every rank, in place."""
    if not dist.is_initialized():
        return
    for b in model.buffers():
        dist.broadcast(b, src=src)


@torch.no_grad()
def distribute_bn(model: nn.Module, reduce: bool = True, src: int = 0) -> None:
    """Make ``model``'s BatchNorm statistics (its floating-point ``running_mean``/``running_var``
    buffers) agree on every rank, in place: their mean over ranks (``reduce``) or rank ``src``'s.
    After it an EMA of the weights evaluated on each rank is the model rank 0 saves. A no-op
    without a process group. Source: timm ``utils.distributed.distribute_bn``.
    """
    if not dist.is_initialized():
        return
    for name, b in model.named_buffers():
        if not name.endswith(("running_mean", "running_var")) or not b.is_floating_point():
            continue
        if reduce:
            dist.all_reduce(b, op=dist.ReduceOp.SUM)
            b /= dist.get_world_size()
        else:
            dist.broadcast(b, src=src)


def check_batch_size(batch_size: int, world_size: int) -> None:
    """Raise ConfigError unless the global ``batch_size`` splits evenly over ``world_size`` ranks."""
    if batch_size % world_size:
        raise ConfigError(f"data.batch_size={batch_size} is not divisible by the {world_size} processes: "
                          f"use a multiple of {world_size}")


class ShardedBatches:
    """A :class:`~resnet_cli.data.batches.TrainBatches` view: of each global batch x (B, 3, H, W), y (B,)
    rows ``rank * B/W : (rank + 1) * B/W`` (W = world size); ``len()`` unchanged. ConfigError if the
    global batch size is not divisible by ``world_size``."""

    def __init__(self, inner, rank: int, world_size: int, batch_size: int):
        check_batch_size(batch_size, world_size)
        self.inner, self.rank, self.world_size = inner, rank, world_size
        self.local = batch_size // world_size

    def __len__(self) -> int:
        return len(self.inner)

    def epoch(self, epoch: int, start_step: int = 0):
        lo, hi = self.rank * self.local, (self.rank + 1) * self.local
        for x, y in self.inner.epoch(epoch, start_step):
            yield x[lo:hi], y[lo:hi]


def shard_rows(n: int, rank: int, world_size: int) -> slice:
    """The contiguous block of ``n`` rows (e.g. test images) rank ``rank`` evaluates."""
    per, extra = divmod(n, world_size)
    start = rank * per + min(rank, extra)
    return slice(start, start + per + (1 if rank < extra else 0))


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel when a process group is active, else itself."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return model
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


__all__ = ["World", "env_world", "current", "process_group", "hydra_overrides_for_rank",
           "all_reduce_sums", "broadcast_object", "broadcast_buffers", "distribute_bn", "check_batch_size",
           "ShardedBatches", "shard_rows", "wrap"]
