"""Data-parallel training across processes with :mod:`torch.distributed` and
:class:`~torch.nn.parallel.DistributedDataParallel`, launched by ``torchrun``::

    torchrun --standalone --nproc_per_node=4 -m resnet_cli.train data.batch_size=512 ...

``torchrun`` starts one process per GPU (or per CPU worker) and sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`process_group` reads them
(``env://`` initialisation) and joins the group: NCCL on CUDA (process ``LOCAL_RANK`` drives
``cuda:LOCAL_RANK``), gloo on the CPU. Without those variables (or with ``WORLD_SIZE=1``)
everything here is a no-op and training runs in one process as usual.

How the recipe is split (see :mod:`resnet_cli.engine` and :func:`resnet_cli.fit.fit`):

* The global batch stays ``data.batch_size`` images: every rank draws the same global batch
  (batches are a pure function of seed, epoch and step) and trains on its contiguous slice of
  ``batch_size / WORLD_SIZE`` images (:class:`ShardedBatches`); DDP averages the gradients, so one
  optimizer step sees the gradient of the mean loss over the whole global batch, as in one
  process. ``data.batch_size`` must be divisible by ``WORLD_SIZE``.
* BatchNorm statistics are per rank (per slice), as in standard DDP; buffers are broadcast from
  rank 0 before each forward (DDP's default) and before each evaluation (:func:`broadcast_buffers`),
  so every rank evaluates the weights that rank 0 checkpoints.
* Loss/accuracy sums and counts are summed over ranks (:func:`all_reduce_sums`); the test split
  is divided between ranks for evaluation and the sums reduced the same way.
* Only rank 0 writes files (checkpoint, metrics.json, history.csv, plots, TensorBoard); the
  other ranks log warnings and errors only and keep Hydra from writing anything for them
  (:func:`hydra_overrides_for_rank`).

Sources: PyTorch "Getting Started with Distributed Data Parallel" and the ``torchrun``
documentation (https://pytorch.org/docs/stable/elastic/run.html).
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

from .errors import ConfigError

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
        """True when more than one process trains together."""
        return self.world_size > 1


def env_world() -> World:
    """The :class:`World` described by torchrun's environment variables (defaults: one process).

    Raises:
        ConfigError: the variables are not integers or are inconsistent.
    """
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


def backend_for(device: torch.device) -> str:
    """``nccl`` for CUDA devices, ``gloo`` otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


@contextmanager
def process_group(device_name: str, multirun: bool = False) -> Iterator[World]:
    """Join the torchrun process group for the duration of a run (no-op for one process).

    Args:
        device_name: ``trainer.device`` (auto|cpu|cuda). On CUDA, process ``LOCAL_RANK`` is bound
            to ``cuda:LOCAL_RANK`` (so ``torch.device("cuda")`` means that GPU from here on).
        multirun: the run is a job of a multirun sweep (:class:`resnet_cli.job.JobInfo`).

    Yields:
        The :class:`World` of this process.

    Raises:
        ConfigError: a bad device, fewer visible GPUs than processes on this node, or a
            multirun (``-m``) under torchrun.
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
    backend = backend_for(device)
    dist.init_process_group(backend=backend, init_method="env://")
    if world.is_main:
        log.info("distributed: %d processes, backend %s", world.world_size, backend)
    try:
        yield world
    finally:
        dist.destroy_process_group()


def hydra_overrides_for_rank(world: World | None = None) -> list[str]:
    """Hydra overrides that stop a rank other than 0 from writing anything.

    Rank 0 uses the run folder as usual. Any other rank gets an empty private temporary folder
    as its Hydra run folder, no ``.hydra/`` copy of the config and no log file (warnings and
    errors still reach stderr). The folder is removed at exit; if something wrote into it
    (a bug: only rank 0 may write), it is kept and a warning names it.
    """
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


def check_batch_size(batch_size: int, world_size: int) -> None:
    """Raise ConfigError unless the global ``batch_size`` splits evenly over ``world_size`` ranks."""
    if batch_size % world_size:
        raise ConfigError(f"data.batch_size={batch_size} is not divisible by the {world_size} processes: "
                          f"use a multiple of {world_size}")


class ShardedBatches:
    """A :class:`~resnet_cli.batches.TrainBatches` view giving this rank its slice of each global batch.

    ``inner`` yields global batches x (B, 3, H, W), y (B,); this yields rows
    ``rank * B/W : (rank + 1) * B/W`` of each (W = world size). ``len()`` is unchanged (steps per
    epoch). Every rank draws the whole batch, so the data each rank sees is exactly its part of what
    a single process would see at the same (seed, epoch, step).

    Raises:
        ConfigError: the global batch size is not divisible by ``world_size``.
    """

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


__all__ = ["World", "env_world", "current", "backend_for", "process_group", "hydra_overrides_for_rank",
           "all_reduce_sums", "broadcast_object", "broadcast_buffers", "check_batch_size", "ShardedBatches", "shard_rows", "wrap"]
