"""A run's state and what it writes into its run folder (metrics.json, history.csv, checkpoints/last.pt).

Run folder layout (``run_dir``)::

    metrics.json         final and per-epoch metrics (accuracies are fractions 0-1), status, timings
    history.csv          one row per epoch: epoch, lr, train_loss, train_acc, test_loss, test_acc, seconds,
                         images_per_s (test_* empty where trainer.eval_every skipped the epoch)
    checkpoints/last.pt  model/optimizer/scheduler/epoch + config, classes, mean/std (atomic)
    plots/lr_finder.png, plots/lr_schedule.png, plots/curves.png
    plots/samples.png, plots/augmentations.png   dataset previews (resnet_cli.previews)
    model_summary.txt    torchinfo layer table (output shapes, parameter counts)
    plots/misclassified.png, plots/confusion_matrix.png, plots/gradcam/*.png   end-of-run diagnostics;
                         metrics.json gains class_acc {class: fraction 0-1} and confusion (rows = true)
    tensorboard/         event files with logger=tensorboard (resnet_cli.loggers)

Under ``torchrun`` (resnet_cli.distributed) only rank 0 writes any of these files.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from .checkpoint import atomic_write_bytes, load_weights, save_checkpoint, write_json
from .data import DataBundle
from .distributed import World
from .errors import ConfigError
from .models import count_parameters
from .schedule import LRFindResult

HISTORY_KEYS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds", "images_per_s")
PHASES = ("data", "batches", "lr_finder", "train", "eval", "diagnostics")
"""Timed phases of a run (seconds each, :meth:`Run.timings`)."""


def empty_partial() -> dict[str, float]:
    """Sums of an epoch not yet started: loss_sum (nats), correct and count (images), seconds."""
    return {"loss_sum": 0.0, "correct": 0, "count": 0, "seconds": 0.0}


def position(epochs_done: int, step: int) -> str:
    """Where a run stands, as interrupt and resume both say it: ``epoch E step S`` = S steps of
    epoch E (1-based) done, after E - 1 whole epochs; ``step 0`` = epoch E not started."""
    return f"epoch {epochs_done + 1} step {step}"


def health_warnings(history: list[dict], num_classes: int, max_lr: float | None) -> list[str]:
    """Warnings for a run that finished but did not learn: a test loss that exploded (above 10 x
    ln(num_classes), the loss of a uniform guess) or a final test accuracy at chance (at most
    1.5 / num_classes). Each names the likely cause (the LR) and the plots to look at."""
    if not history:
        return []
    out, chance_loss = [], math.log(num_classes)
    tested = [h for h in history if h["test_loss"] is not None]  # trainer.eval_every skips epochs
    if not tested:
        return []
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


def check_writable(run_dir: Path) -> None:
    """Raise ConfigError if ``run_dir`` cannot be written (checked before training starts)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise ConfigError(
            f"output folder {run_dir} is not writable ({e.strerror}); "
            "choose another with hydra.run.dir=<folder>"
        ) from None
    if not os.access(run_dir, os.W_OK):
        raise ConfigError(f"output folder {run_dir} is not writable; choose another with hydra.run.dir=<folder>")


@dataclass
class Run:
    """Everything one training run holds, built step by step by :func:`resnet_cli.engine.run`.

    ``epoch``/``step``: epochs done and steps of the next epoch done (where training resumes);
    ``partial``: that epoch's running sums (:func:`empty_partial`); ``history``: one row per
    epoch (:data:`HISTORY_KEYS`; accuracies fractions 0-1, seconds); ``step_lrs``: the LR of every
    optimizer step; ``seconds``: wall seconds per phase (:data:`PHASES`); ``last_eval``: the last
    epoch's test outputs (``preds`` int64 (N,), ``probs`` float32 (N, C)) for the diagnostics.
    """

    cfg: DictConfig
    run_dir: Path
    world: World
    started: float
    device: torch.device = torch.device("cpu")
    data: DataBundle | None = None
    model: nn.Module | None = None
    lr: LRFindResult | None = None
    optimizer: torch.optim.Optimizer | None = None
    scheduler: Any = None
    history: list[dict] = field(default_factory=list)
    step_lrs: list[float] = field(default_factory=list)
    epoch: int = 0
    step: int = 0
    partial: dict = field(default_factory=empty_partial)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    epoch_memory: list[dict] = field(default_factory=list)  # CUDA: {"epoch", "allocated_mib", "peak_mib"}
    last_eval: dict[str, Any] | None = None
    target_layers: Any = None  # Grad-CAM layers (resnet_cli.layers.TargetLayers), probed once (engine.describe)
    status: str = "running"
    train_seconds_before: float = 0.0  # training seconds of the commands before a resume (not in timings)
    created: float = field(default_factory=time.perf_counter)

    @property
    def ckpt_path(self) -> Path:
        return self.run_dir / "checkpoints" / "last.pt"

    def checkpoint(self, epoch: int, step: int, partial: dict | None = None) -> Path:
        """Atomically write checkpoints/last.pt; ``epoch`` epochs and ``step`` further steps done.
        Only rank 0 writes (the other ranks return the path)."""
        if not self.world.is_main:
            return self.ckpt_path
        config = OmegaConf.to_container(self.cfg, resolve=True)
        config["data"]["root"] = self.data.root  # absolute: the checkpoint works from any cwd
        return save_checkpoint(self.ckpt_path, {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "epoch": epoch, "step": step,
            "partial": partial or empty_partial(), "config": config, "classes": list(self.data.classes),
            "mean": [float(m) for m in self.data.mean], "std": [float(s) for s in self.data.std],
            "image_size": int(self.cfg.data.image_size), "history": self.history, "step_lrs": self.step_lrs,
            "lr": self.lr.as_dict(), "train_seconds": self.train_seconds(), "torch_rng": torch.get_rng_state(),
        })

    def restore(self, ckpt: dict) -> None:
        """Continue from a checkpoint's weights, LRs, history and position (optimizer and
        scheduler states are loaded once they exist, :func:`resnet_cli.engine.build_optimizer`).

        Raises:
            CheckpointError: the weights do not fit the model (names the first mismatching key)."""
        load_weights(self.model, ckpt["model"], self.cfg.resume, key="resume")
        self.lr = LRFindResult(**ckpt["lr"])
        self.history, self.step_lrs = list(ckpt["history"]), list(ckpt["step_lrs"])
        self.epoch, self.step = ckpt["epoch"], ckpt["step"]
        self.partial = dict(ckpt["partial"])
        if not self.world.is_main:  # the partial sums are global (reduced when saved): count them once
            self.partial.update(loss_sum=0.0, correct=0, count=0)
        self.train_seconds_before = float(ckpt["train_seconds"])  # this command's timings count from 0

    def train_seconds(self) -> float:
        """Seconds of training over the whole run: the commands before a resume and this one."""
        return self.train_seconds_before + self.seconds["train"]

    def timings(self) -> dict[str, float]:
        """Where the command's time went, in seconds: ``startup`` (entry point to the engine:
        imports, config), ``data`` (loading/decoding), ``batches`` (train/test tensors, upload),
        ``lr_finder`` (range test), ``train`` (step loops), ``eval`` (per-epoch test passes),
        ``diagnostics`` (end-of-run plots and Grad-CAM), ``total`` (so far) and ``other``
        (the rest: checkpoints, records, previews, model summary). Only this command's time:
        a resumed run's earlier training is in metrics.json's ``train_seconds``, not here, so
        the parts add up to ``total``."""
        t = {"startup": self.created - self.started, **self.seconds}
        total = time.perf_counter() - self.started
        t["other"] = max(total - sum(t.values()), 0.0)
        t["total"] = total
        return {k: round(v, 3) for k, v in t.items()}

    def metrics(self, **extra) -> dict[str, Any]:
        """metrics.json's content: the last epoch's results (accuracies fractions 0-1), the LRs,
        warnings, timings (seconds), history; ``extra`` adds or replaces keys."""
        last = self.history[-1] if self.history else {}
        lr = self.lr
        num_classes = len(self.data.classes) if self.data else 0
        m = {
            "status": self.status,
            **{k: last.get(k) for k in ("test_acc", "test_loss", "train_acc", "train_loss")},
            "min_lr": lr.min_lr if lr else None, "max_lr": lr.max_lr if lr else None,
            "lr_rule": lr.rule if lr else None,
            "warnings": (lr.warnings if lr else []) + health_warnings(self.history, num_classes, lr.max_lr if lr else None),
            "epochs": int(self.cfg.trainer.epochs), "epochs_done": len(self.history),
            "train_seconds": round(self.train_seconds(), 3),
            "setup_seconds": {k: round(self.seconds[k], 3) for k in ("data", "batches", "lr_finder")},
            "timings": self.timings(), "cuda_memory": self.epoch_memory, "device": str(self.device),
            "params": count_parameters(self.model) if self.model is not None else 0, "seed": int(self.cfg.seed), "history": self.history,
            "dataset": self.data.describe() if self.data else None,
        }
        m.update(extra)
        return m

    def write_records(self, **extra) -> dict[str, Any]:
        """Write metrics.json and history.csv (rank 0, each atomically); returns the metrics.

        Raises:
            OutputError: a full disk (the previous files are kept)."""
        m = self.metrics(**extra)
        if self.world.is_main:
            write_json(self.run_dir / "metrics.json", m)
            text = io.StringIO(newline="")
            w = csv.DictWriter(text, fieldnames=HISTORY_KEYS)
            w.writeheader()
            w.writerows({k: row[k] for k in HISTORY_KEYS} for row in self.history)
            atomic_write_bytes(self.run_dir / "history.csv", text.getvalue().encode())
        return m
