"""A run's state (:class:`RunState`), its records (:class:`Records`: metrics.json, history.csv and
the checkpoint, rank 0 only; :class:`Timings`), its stop flag (:class:`Stop`) and what a finished
run returns (:class:`RunResult`). The files and their keys: docs/run-folder.md.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

import torch
from rich.console import Console
from torch import nn

from .checkpoint import STATE_KEYS, atomic_write_bytes, last_checkpoint, save_training, write_json
from ..data import DataBundle
from .distributed import World
from ..errors import ConfigError
from ..models import count_parameters
from .precision import runtime_record
from .schedule import LRFindResult, LRs, lrs_from_dict
from .settings import RunConfig

HISTORY_KEYS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds", "images_per_s")
"""history.csv's columns (test_* empty where trainer.eval_every skipped the epoch); with trainer.ema_decay
also :data:`EMA_KEYS`."""
EMA_KEYS = ("ema_test_loss", "ema_test_acc")  # with trainer.ema_decay only
PHASES = ("data", "batches", "lr_finder", "train", "eval", "diagnostics")  # timed, seconds each


def empty_partial() -> dict[str, float]:
    """Sums of an epoch not yet started: loss_sum (nats), correct and count (images), seconds."""
    return {"loss_sum": 0.0, "correct": 0, "count": 0, "seconds": 0.0}


def position(epochs_done: int, step: int) -> str:
    """Where a run stands: ``epoch E step S`` = S steps of epoch E (1-based) done."""
    return f"epoch {epochs_done + 1} step {step}"


def health_warnings(history: list[dict], num_classes: int, max_lr: float | None) -> list[str]:
    """Warnings for a run that did not learn: a test loss above 10 x ln(num_classes) (a uniform
    guess's) or a final test accuracy (fraction 0-1) at most 1.5 / num_classes."""
    tested = [h for h in history if h["test_loss"] is not None]
    if not tested:
        return []
    out, chance_loss = [], math.log(num_classes)
    worst = max(tested, key=lambda h: h["test_loss"] if math.isfinite(h["test_loss"]) else math.inf)
    lr = f"max_lr {max_lr:.3g}" if max_lr is not None else "the LR"
    if worst["test_loss"] > 10 * chance_loss:
        out.append(f"test loss reached {worst['test_loss']:.3g} at epoch {worst['epoch']} (a uniform guess scores "
                   f"{chance_loss:.2f}): {lr} is likely too high for this data and batch size; see plots/curves.png "
                   "and plots/lr_finder.png, and lower scheduler.max_lr or set it to find")
    if tested[-1]["test_acc"] <= 1.5 / num_classes:
        out.append(f"test accuracy {100 * tested[-1]['test_acc']:.1f} % is at chance ({100 / num_classes:.0f} %): "
                   f"the network did not learn; {lr} is the likely cause, see plots/curves.png and plots/lr_finder.png")
    return out


def read_metrics_json(run_dir: str | Path) -> dict[str, Any] | None:
    """``run_dir/metrics.json`` as a dict; None when there is none. An unreadable or non-object
    file reads as ``{"status": "failed", "error": "unreadable metrics.json (<reason>)"}``."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return {"status": "failed", "error": f"unreadable metrics.json ({e})"}
    return data if isinstance(data, dict) else {"status": "failed", "error": "unreadable metrics.json (not an object)"}


def check_writable(run_dir: Path) -> None:
    """Raise ConfigError if ``run_dir`` cannot be written (checked before training starts)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"output folder {run_dir} is not writable ({e.strerror}); "
                          "choose another with hydra.run.dir=<folder>") from None
    if not os.access(run_dir, os.W_OK):
        raise ConfigError(f"output folder {run_dir} is not writable; choose another with hydra.run.dir=<folder>")


@dataclass
class RunState:
    """What the recipe has produced so far; the checkpoint holds all but ``status``, ``last_eval``
    and ``cuda_memory``.

    ``epoch``/``step``: epochs done and steps of the next done; ``partial``: that epoch's sums;
    ``history``: one row per epoch (:data:`HISTORY_KEYS`; accuracies fractions 0-1, seconds);
    ``train_seconds_before``: training seconds before a resume; ``last_eval``: the last epoch's
    ``preds`` int64 (N,) and ``probs`` float32 (N, C); ``ema``: :mod:`resnet_cli.core.ema` or None.
    """

    model: nn.Module
    lr: LRs | LRFindResult
    optimizer: torch.optim.Optimizer | None = None
    scheduler: Any = None
    history: list[dict] = field(default_factory=list)
    step_lrs: list[float] = field(default_factory=list)
    epoch: int = 0
    step: int = 0
    partial: dict = field(default_factory=empty_partial)
    status: str = "running"
    train_seconds_before: float = 0.0
    last_eval: dict[str, Any] | None = None
    cuda_memory: list[dict] = field(default_factory=list)
    ema: nn.Module | None = None

    @classmethod
    def from_checkpoint(cls, ckpt: dict, model: nn.Module, world: World) -> RunState:
        """The state a checkpoint saved, around ``model`` (which already holds its weights)."""
        state = cls(model, lrs_from_dict(ckpt["lr"]), **{k: ckpt[k] for k in STATE_KEYS},
                    train_seconds_before=float(ckpt["train_seconds"]))
        state.history, state.step_lrs, state.partial = list(state.history), list(state.step_lrs), dict(state.partial)
        if not world.is_main:  # the partial sums are global (reduced when saved): count them once
            state.partial.update(loss_sum=0.0, correct=0, count=0)
        return state


@dataclass
class Timings:
    """Where this command's time went, in seconds: ``startup`` (entry point to engine), one entry per
    :data:`PHASES`, ``other`` (checkpoints, records, previews) and ``total``, their sum."""

    started: float = field(default_factory=time.perf_counter)  # when the command began
    created: float = field(default_factory=time.perf_counter)  # when the engine began
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Add the time the block takes to ``seconds[name]``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t0

    def as_dict(self) -> dict[str, float]:
        t = {"startup": self.created - self.started, **self.seconds}
        total = time.perf_counter() - self.started
        t["other"] = max(total - sum(t.values()), 0.0)
        t["total"] = total
        return {k: round(v, 3) for k, v in t.items()}


@dataclass
class Records:
    """Where a run's records go (rank 0 writes) and what they say besides the state; ``logger``: the
    tracker (:mod:`resnet_cli.tracking`)."""

    run_dir: Path
    world: World
    config: RunConfig
    data: DataBundle
    device: torch.device
    timings: Timings
    console: Console
    logger: Any = None
    checkpointed: str | None = None  # where the run stood at the last checkpoint this command wrote

    @property
    def checkpoint_path(self) -> Path:
        return last_checkpoint(self.run_dir)

    @cached_property
    def runtime(self) -> dict[str, Any]:
        """What runs: resolved precision, channels_last, device and its name, torch and torchvision
        versions (:func:`resnet_cli.core.precision.runtime_record`); metrics.json's and the checkpoint's ``runtime``."""
        t = self.config.trainer
        return runtime_record(self.device, t.precision, t.channels_last)

    def train_seconds(self, state: RunState) -> float:
        """Seconds of training over the whole run, the commands before a resume included."""
        return state.train_seconds_before + self.timings.seconds["train"]

    def checkpoint(self, state: RunState) -> Path:
        """Atomically write checkpoints/last.pt (rank 0); returns its path.

        Raises:
            OutputError: a full disk (the previous checkpoint is kept)."""
        if self.world.is_main:
            config = copy.deepcopy(dict(self.config.resolved))
            config["data"]["root"] = self.data.root  # absolute: the checkpoint works from any cwd
            save_training(self.checkpoint_path, state, config, self.data, self.train_seconds(state), self.runtime)
        self.checkpointed = f"end of epoch {state.epoch}" if state.step == 0 else position(state.epoch, state.step)
        return self.checkpoint_path

    def metrics_json(self, state: RunState, **extra) -> dict[str, Any]:
        """metrics.json's content (accuracies fractions 0-1, seconds); ``extra`` adds or replaces keys."""
        last, lr = state.history[-1] if state.history else {}, state.lr
        m = {
            "status": state.status,
            **{k: last.get(k) for k in ("test_acc", "test_loss", "train_acc", "train_loss")},
            **{k: last.get(k) for k in EMA_KEYS if state.ema is not None},
            "min_lr": lr.min_lr, "max_lr": lr.max_lr, "lr_rule": lr.rule,
            "warnings": lr.warnings + health_warnings(state.history, len(self.data.classes), lr.max_lr),
            "epochs": self.config.trainer.epochs, "epochs_done": len(state.history),
            "train_seconds": round(self.train_seconds(state), 3),
            "setup_seconds": {k: round(self.timings.seconds[k], 3) for k in ("data", "batches", "lr_finder")},
            "timings": self.timings.as_dict(), "cuda_memory": state.cuda_memory, "device": str(self.device),
            "runtime": self.runtime,
            "params": count_parameters(state.model), "seed": self.config.seed, "history": state.history,
            "dataset": self.data.describe(),
        }
        m.update(extra)
        return m

    def write(self, state: RunState, **extra) -> dict[str, Any]:
        """Write metrics.json and history.csv (rank 0, each atomically); returns the metrics.

        Raises:
            OutputError: a full disk (the previous files are kept)."""
        m = self.metrics_json(state, **extra)
        if self.world.is_main:
            write_json(self.run_dir / "metrics.json", m)
            text = io.StringIO(newline="")
            keys = HISTORY_KEYS + (EMA_KEYS if state.ema is not None else ())
            w = csv.DictWriter(text, fieldnames=keys)
            w.writeheader()
            w.writerows({k: row.get(k) for k in keys} for row in state.history)
            atomic_write_bytes(self.run_dir / "history.csv", text.getvalue().encode())
        return m


@dataclass
class Stop:
    """How a run stops (:func:`resnet_cli.core.fit.stop_signals`): ``signal``, the first SIGINT/SIGTERM's
    name (checkpoint after the step); while ``immediate`` a signal stops at once."""

    signal: str | None = None
    immediate: bool = True


@dataclass
class RunResult:
    """What a finished run returns: ``metrics`` (as in metrics.json), the run folder, the trained
    model (training device, eval mode) and the checkpoint path."""

    metrics: dict[str, Any]
    run_dir: Path
    model: nn.Module
    checkpoint: Path
    data: DataBundle | None = field(default=None, repr=False)
