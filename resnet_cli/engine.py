"""The recipe as one function: :func:`run` finds the LR, trains with One Cycle, evaluates after
every epoch and writes a self-describing run folder.

Run folder layout (``run_dir``)::

    metrics.json         final and per-epoch metrics (accuracies are fractions 0-1), status
    history.csv          one row per epoch: epoch, lr, train_loss, train_acc, test_loss, test_acc, seconds
    checkpoints/last.pt  model/optimizer/scheduler/epoch + config, classes, mean/std (atomic)
    plots/lr_finder.png, plots/lr_schedule.png, plots/curves.png
    plots/samples.png, plots/augmentations.png   dataset previews (resnet_cli.previews)
    model_summary.txt    torchinfo layer table (output shapes, parameter counts)
    plots/misclassified.png, plots/confusion_matrix.png, plots/gradcam/*.png   resnet_cli.explain;
                         metrics.json gains class_acc {class: fraction 0-1} and confusion (rows = true)
    tensorboard/         event files with logger=tensorboard (resnet_cli.loggers)

Under ``torchrun`` (resnet_cli.distributed) every rank trains on its slice of each global batch
and only rank 0 writes any of these files.

The step loop keeps loss and accuracy sums on the device; it synchronises with the host only
every ``trainer.log_every`` steps (progress display and the non-finite-loss check) on CUDA,
and every step on the CPU, where a check costs nothing.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import random
import signal
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn
from torch.nn import functional as F

from . import explain, plots, previews
from .augment import TestBatches, build_train_batches
from .checkpoint import RESUME_KEYS, check_keys, load_checkpoint, save_checkpoint, write_json
from .config import check_writable, resolve_device, resolve_fused, validate
from .data import DataBundle, load_data
from .errors import CheckpointError, ConfigError, UserError
from .lr_finder import LRFindResult, auto_smooth_f, find_lr, one_cycle
from .models import count_parameters
from . import distributed
from .loggers import NullLogger, build_logger

log = logging.getLogger("resnet_cli")

HISTORY_KEYS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds")


class Diverged(UserError):
    """The training loss became non-finite; the last good checkpoint is kept. Exit code 3."""

    exit_code = 3


class Interrupted(UserError):
    """SIGINT/SIGTERM stopped training after a step; a resumable checkpoint was written. Exit 130."""

    exit_code = 130


@dataclass
class RunResult:
    """What a finished run returns: ``metrics`` (as in metrics.json), the run folder, the trained
    model (on its training device, eval mode) and the checkpoint path."""

    metrics: dict[str, Any]
    run_dir: Path
    model: nn.Module
    checkpoint: Path
    data: DataBundle | None = field(default=None, repr=False)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast_for(device: torch.device, precision: str):
    """An autocast context: bf16 on CUDA for precision auto|bf16, otherwise a no-op (fp32)."""
    if device.type == "cuda" and precision in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


@torch.inference_mode()
def evaluate(model: nn.Module, batches, device: torch.device, precision: str = "fp32",
             return_outputs: bool = False) -> dict[str, Any]:
    """Mean cross-entropy and accuracy (fraction 0-1) of ``model`` over ``batches``.

    With ``return_outputs``, also ``preds`` int64 (N,) and ``probs`` float32 (N, C) softmax
    probabilities on the CPU, in the batches' order. Sums stay on the device until the end.
    """
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    n, preds, probs = 0, [], []
    for x, y in batches:
        with autocast_for(device, precision):
            logits = model(x)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        p = logits.argmax(1)
        correct += (p == y).sum()
        n += len(y)
        if return_outputs:
            preds.append(p)
            probs.append(F.softmax(logits, 1))
    out = {"loss": loss_sum.item() / max(n, 1), "acc": correct.item() / max(n, 1), "n": n}
    if return_outputs:
        out["preds"] = torch.cat(preds).cpu()
        out["probs"] = torch.cat(probs).cpu()
    return out


class StopRequest(KeyboardInterrupt):
    """SIGINT/SIGTERM that stops the run at once (during set-up, or a second Ctrl-C);
    ``signame`` names the signal. :func:`resnet_cli.cli.user_errors` turns it into exit 130."""

    def __init__(self, signame: str):
        super().__init__(signame)
        self.signame = signame


@contextmanager
def stop_signals(immediate: bool = False) -> Iterator[dict]:
    """Turn the first SIGINT/SIGTERM into a flag (``state["signal"]``) checked after each step;
    a second SIGINT interrupts at once. While ``state["immediate"]`` is true (set-up: data
    loading, LR range test, when there is nothing to checkpoint yet) any of them raises
    :class:`StopRequest` at once. Handlers are restored on exit (main thread only)."""
    state: dict[str, Any] = {"signal": None, "immediate": immediate}
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum, frame):
        if state["immediate"] or (state["signal"] is not None and signum == signal.SIGINT):
            raise StopRequest(signal.Signals(signum).name)
        state["signal"] = signal.Signals(signum).name
        log.warning("%s received: stopping after this step and writing a checkpoint", state["signal"])

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _history_csv(path: Path, history: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=HISTORY_KEYS)
        w.writeheader()
        for row in history:
            w.writerow({k: row[k] for k in HISTORY_KEYS})


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  acc {task.fields[acc]}  lr {task.fields[lr]}"),
        TimeElapsedColumn(), console=console, transient=True,
    )


@contextmanager
def _range_test_progress(console: Console, total: int) -> Iterator:
    """A rich bar for the LR range test's steps: yields a wrapper for torch-lr-finder's step loop."""
    with Progress(TextColumn("[bold]LR range test"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("", total=total)

        def bar(steps):
            progress.reset(task)  # a repeated (zoomed) test starts the bar again
            for i in steps:
                yield i
                progress.advance(task)

        yield bar


def health_warnings(history: list[dict], num_classes: int, max_lr: float | None) -> list[str]:
    """Warnings for a run that finished but did not learn: a test loss that exploded (above 10 x
    ln(num_classes), the loss of a uniform guess) or a final test accuracy at chance (at most
    1.5 / num_classes). Each names the likely cause (the LR) and the plots to look at."""
    if not history:
        return []
    out, chance_loss = [], math.log(num_classes)
    worst = max(history, key=lambda h: h["test_loss"] if math.isfinite(h["test_loss"]) else math.inf)
    lr = f"max_lr {max_lr:.3g}" if max_lr is not None else "the LR"
    if worst["test_loss"] > 10 * chance_loss:
        out.append(f"test loss reached {worst['test_loss']:.3g} at epoch {worst['epoch']} (a uniform guess scores "
                   f"{chance_loss:.2f}): {lr} is likely too high for this data and batch size; see plots/curves.png "
                   "and plots/lr_finder.png, and lower scheduler.max_lr or set it to find")
    if history[-1]["test_acc"] <= 1.5 / num_classes:
        out.append(f"test accuracy {100 * history[-1]['test_acc']:.1f} % is at chance ({100 / num_classes:.0f} %): "
                   f"the network did not learn; {lr} is the likely cause, see plots/curves.png and plots/lr_finder.png")
    return out


def _first_job() -> bool:
    """False only in the second and later jobs of a Hydra multirun sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return True
    return HydraConfig.get().job.get("num", 0) == 0


def position(epochs_done: int, step: int) -> str:
    """Where a run stands, as interrupt and resume both say it: ``epoch E step S`` = S steps of
    epoch E (1-based) done, after E - 1 whole epochs; ``step 0`` = epoch E not started."""
    return f"epoch {epochs_done + 1} step {step}"


def _resume_config(cfg: DictConfig, ckpt: dict) -> DictConfig:
    """The checkpoint's config, so the resumed run keeps the same model, data and schedule;
    device, log interval and worker count come from the current command line."""
    saved = OmegaConf.create(ckpt["config"])
    # logger: the current command line's (logging does not change training)
    for key in ("trainer.device", "trainer.log_every", "data.num_workers", "explain", "logger"):
        OmegaConf.update(saved, key, OmegaConf.select(cfg, key), merge=False)
    saved.resume = cfg.resume
    return saved


class Trainer:
    """State of one training run; :func:`run` drives it. Not part of the public API."""

    def __init__(self, cfg: DictConfig, run_dir: Path, console: Console | None = None, started: float | None = None):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        # torchrun: this process's rank; only rank 0 writes files and shows progress (distributed.py)
        self.world = distributed.current()
        self.logger = NullLogger()
        self.console = console or Console(stderr=True, quiet=not self.world.is_main)
        self.ckpt_path = self.run_dir / "checkpoints" / "last.pt"
        self.history: list[dict] = []
        self.step_lrs: list[float] = []
        self.lr: LRFindResult | None = None
        self.start_epoch, self.start_step = 0, 0
        self.partial = {"loss_sum": 0.0, "correct": 0, "count": 0, "seconds": 0.0}
        self.train_seconds = 0.0
        self.setup_seconds: dict[str, float] = {}  # data, batches, lr_finder: wall seconds of set-up phases
        self.eval_seconds = 0.0  # per-epoch test evaluations
        self.diagnostics_seconds = 0.0  # end-of-run plots, misclassified, confusion, Grad-CAM
        self.started = time.perf_counter() if started is None else started  # the command's start (timings)
        self.created = time.perf_counter()
        self.last_eval: dict[str, Any] | None = None  # last epoch's test outputs (preds, probs) for diagnostics
        self.epoch_memory: list[dict] = []  # CUDA: per epoch {"epoch", "allocated_mib", "peak_mib"}
        self.status = "running"

    # -- set-up ----------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg
        resume_ckpt = None
        if cfg.resume:
            resume_ckpt = load_checkpoint(cfg.resume, key="resume")
            if "optimizer" not in resume_ckpt:
                raise CheckpointError(f"{cfg.resume} holds no optimizer state and cannot be resumed")
            check_keys(resume_ckpt, cfg.resume, RESUME_KEYS)
            cfg = self.cfg = _resume_config(cfg, resume_ckpt)
        validate(cfg)
        if self.world.distributed:
            distributed.check_batch_size(cfg.data.batch_size, self.world.world_size)
        if self.world.is_main:
            check_writable(self.run_dir)
        self.device = resolve_device(cfg.trainer.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        seed_everything(cfg.seed)
        t0 = time.perf_counter()
        self.data = load_data(cfg.data, cfg.seed)
        self.setup_seconds["data"] = time.perf_counter() - t0
        # plots/samples.png + plots/augmentations.png; private RNGs, so training is unaffected
        if self.world.is_main:
            previews.write_previews(self.data, cfg, self.run_dir / "plots")
        self.model = instantiate(cfg.model, num_classes=len(self.data.classes)).to(self.device)
        if self.device.type == "cuda" and cfg.trainer.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.params = count_parameters(self.model)
        log.info("model %s: %s parameters, device %s", cfg.model._target_.rsplit(".", 1)[-1],
                 f"{self.params:,}", self.device)
        # model_summary.txt (torchinfo; eval-mode zeros: no BN or RNG change); bad explain.layers fail here
        table = explain.model_summary(self.model, cfg.data.image_size,
                                      self.run_dir / "model_summary.txt" if self.world.is_main else None)
        if _first_job():  # the table once per command; every job keeps model_summary.txt
            log.info("model summary (model_summary.txt):\n%s", table)
        explain.resolve_target_layers(self.model, cfg.explain.layers, cfg.data.image_size)
        t0 = time.perf_counter()
        self.train_batches = build_train_batches(self.data, cfg, self.device)
        self.test_batches = TestBatches(self.data.test_images, self.data.test_labels, self.data.mean,
                                        self.data.std, cfg.data.batch_size, self.device)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.setup_seconds["batches"] = time.perf_counter() - t0
        self.make_optimizer = instantiate(cfg.optimizer, fused=resolve_fused(cfg.optimizer.get("fused"), self.device))
        t0 = time.perf_counter()
        if resume_ckpt is not None:
            self._restore(resume_ckpt)
        elif self.world.is_main:
            self._choose_lrs()
        self.setup_seconds["lr_finder"] = time.perf_counter() - t0
        self.eval_batches = self.test_batches
        if self.world.distributed:
            # rank 0's range test decides for all; each rank trains on its slice of every global
            # batch and evaluates its block of the test split (sums reduced in train())
            self.lr = distributed.broadcast_object(self.lr)
            w = self.world
            self.train_batches = distributed.ShardedBatches(self.train_batches, w.rank, w.world_size, cfg.data.batch_size)
            rows = distributed.shard_rows(len(self.data.test_labels), w.rank, w.world_size)
            self.eval_batches = TestBatches(self.data.test_images[rows], self.data.test_labels[rows], self.data.mean,
                                            self.data.std, cfg.data.batch_size, self.device)
        # trainer.compile: the training forward/backward runs through torch.compile; evaluation,
        # the range test and checkpoints use the plain module (same parameters, unprefixed keys).
        # Under torchrun the training module is DistributedDataParallel(model) (compiled after wrapping).
        ddp_model = distributed.wrap(self.model, self.device)
        self.train_model = torch.compile(ddp_model) if cfg.trainer.compile else ddp_model
        self.optimizer = self.make_optimizer(self.model.parameters(), lr=self.lr.max_lr)
        s = cfg.scheduler
        self.scheduler = one_cycle(
            self.optimizer, max_lr=self.lr.max_lr, min_lr=self.lr.min_lr, epochs=cfg.trainer.epochs,
            steps_per_epoch=len(self.train_batches), max_epoch=s.max_epoch, anneal_strategy=s.anneal_strategy,
            annihilation=s.annihilation, cycle_momentum=s.cycle_momentum, base_momentum=s.base_momentum,
            max_momentum=s.max_momentum,
        )
        if resume_ckpt is not None:
            self.optimizer.load_state_dict(resume_ckpt["optimizer"])
            self.scheduler.load_state_dict(resume_ckpt["scheduler"])
            torch.set_rng_state(resume_ckpt["torch_rng"])
        self.logger = build_logger(cfg.get("logger"), self.run_dir, enabled=self.world.is_main)
        self.logger.start(self._hparams())

    def _hparams(self) -> dict[str, Any]:
        """The settings a sweep varies, for the logger's hyper-parameter table (LRs as used)."""
        c = self.cfg
        return {"max_lr": self.lr.max_lr, "min_lr": self.lr.min_lr, "lr_rule": self.lr.rule,
                "weight_decay": float(c.optimizer.weight_decay), "batch_size": int(c.data.batch_size),
                "epochs": int(c.trainer.epochs), "max_epoch": int(c.scheduler.max_epoch),
                "model": str(c.model._target_).rsplit(".", 1)[-1], "augment": str(c.augment.name),
                "seed": int(c.seed), "world_size": self.world.world_size}

    def _choose_lrs(self) -> None:
        s, f = self.cfg.scheduler, self.cfg.lr_finder
        fixed_max = None if s.max_lr == "find" else float(s.max_lr)
        fixed_min = None if s.min_lr == "find" else float(s.min_lr)
        if fixed_max is not None and fixed_min is not None:
            self.lr = LRFindResult([], [], fixed_max, fixed_min, "given")
            log.info("lr: max_lr %.4g and min_lr %.4g given, range test skipped", fixed_max, fixed_min)
            return
        num_iter = f.num_iter or s.max_epoch * len(self.train_batches)  # null: the warm-up's length
        self.smooth_f = f.smooth_f if f.smooth_f is not None else auto_smooth_f(num_iter)
        with _range_test_progress(self.console, num_iter) as bar:
            found = find_lr(self.model, self.make_optimizer, self.train_batches, self.device, step_mode=f.step_mode,
                            start_lr=f.start_lr, end_lr=f.end_lr, num_iter=num_iter, rule=f.rule,
                            smooth_f=self.smooth_f, diverge_th=f.diverge_th, progress=bar)
        max_lr = fixed_max if fixed_max is not None else found.max_lr
        min_lr = fixed_min if fixed_min is not None else min(found.min_lr, max_lr / 10.0)
        self.lr = dataclasses.replace(found, max_lr=max_lr, min_lr=min_lr)
        self._save_lr_plot()
        if min_lr > max_lr:  # validate() checks this when both are numbers; here one came from the range test
            raise ConfigError(f"scheduler.min_lr={min_lr:.4g} is not allowed: must be <= the max_lr {max_lr:.4g} "
                              "that the range test found (plots/lr_finder.png); lower scheduler.min_lr or set "
                              "scheduler.max_lr")

    def _save_lr_plot(self) -> None:
        r = self.lr
        plots.save_figure(plots.plot_lr_finder(r.lrs, r.losses, r.max_lr, r.min_lr, r.rule, r.accs, r.step_mode or "exp",
                                               r.smooth_f), self.run_dir / "plots" / "lr_finder.png")

    def _restore(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.lr = LRFindResult(**ckpt["lr"])
        self.history = list(ckpt["history"])
        self.step_lrs = list(ckpt["step_lrs"])
        self.start_epoch, self.start_step = ckpt["epoch"], ckpt["step"]
        self.partial = dict(ckpt["partial"])
        if not self.world.is_main:  # the partial sums are global (reduced when saved): count them once
            self.partial.update(loss_sum=0.0, correct=0, count=0)
        self.train_seconds = ckpt["train_seconds"]
        log.info("resumed from %s at %s into this new run folder %s; the interrupted run's folder keeps "
                 "status interrupted", self.cfg.resume, position(self.start_epoch, self.start_step), self.run_dir)
        if self.lr.lrs and self.world.is_main:
            self._save_lr_plot()

    # -- records ---------------------------------------------------------------------------
    def checkpoint(self, epoch: int, step: int, partial: dict | None = None) -> Path:
        """Atomically write checkpoints/last.pt; ``epoch`` epochs and ``step`` further steps done.
        Only rank 0 writes (the other ranks return the path)."""
        if not self.world.is_main:
            return self.ckpt_path
        return save_checkpoint(self.ckpt_path, {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": epoch,
            "step": step,
            "partial": partial or {"loss_sum": 0.0, "correct": 0, "count": 0, "seconds": 0.0},
            "config": self._portable_config(),
            "classes": list(self.data.classes),
            "mean": [float(m) for m in self.data.mean],
            "std": [float(s) for s in self.data.std],
            "image_size": int(self.cfg.data.image_size),
            "history": self.history,
            "step_lrs": self.step_lrs,
            "lr": self.lr.as_dict(),
            "train_seconds": self.train_seconds,
            "torch_rng": torch.get_rng_state(),
        })

    def _portable_config(self) -> dict:
        """The resolved config with data.root made absolute, so the checkpoint works from any cwd."""
        config = OmegaConf.to_container(self.cfg, resolve=True)
        config["data"]["root"] = self.data.root
        return config

    def metrics(self, **extra) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        m = {
            "status": self.status,
            "test_acc": last.get("test_acc"),
            "test_loss": last.get("test_loss"),
            "train_acc": last.get("train_acc"),
            "train_loss": last.get("train_loss"),
            "min_lr": self.lr.min_lr if self.lr else None,
            "max_lr": self.lr.max_lr if self.lr else None,
            "lr_rule": self.lr.rule if self.lr else None,
            "warnings": (self.lr.warnings if self.lr else []) + health_warnings(self.history, len(self.data.classes),
                                                                                 self.lr.max_lr if self.lr else None),
            "epochs": int(self.cfg.trainer.epochs),
            "epochs_done": len(self.history),
            "train_seconds": round(self.train_seconds, 3),
            "setup_seconds": {k: round(v, 3) for k, v in self.setup_seconds.items()},
            "timings": self.timings(),
            "cuda_memory": self.epoch_memory,
            "device": str(self.device),
            "params": self.params,
            "seed": int(self.cfg.seed),
            "history": self.history,
            "dataset": self.data.describe(),
        }
        m.update(extra)
        return m

    def timings(self) -> dict[str, float]:
        """Where the command's time went, in seconds: ``startup`` (entry point to the engine:
        imports, config), ``data`` (loading/decoding), ``batches`` (train/test tensors, upload),
        ``lr_finder`` (range test), ``train`` (step loops), ``eval`` (per-epoch test passes),
        ``diagnostics`` (end-of-run plots and Grad-CAM), ``total`` (so far) and ``other``
        (the rest: checkpoints, records, previews, model summary)."""
        t = {"startup": self.created - self.started, "data": self.setup_seconds.get("data", 0.0),
             "batches": self.setup_seconds.get("batches", 0.0), "lr_finder": self.setup_seconds.get("lr_finder", 0.0),
             "train": self.train_seconds, "eval": self.eval_seconds, "diagnostics": self.diagnostics_seconds}
        total = time.perf_counter() - self.started
        t["other"] = max(total - sum(t.values()), 0.0)
        t["total"] = total
        return {k: round(v, 3) for k, v in t.items()}

    def write_records(self, **extra) -> dict[str, Any]:
        m = self.metrics(**extra)
        if self.world.is_main:
            write_json(self.run_dir / "metrics.json", m)
            _history_csv(self.run_dir / "history.csv", self.history)
        return m

    # -- training --------------------------------------------------------------------------
    def train(self, stop: dict) -> None:
        cfg, device = self.cfg, self.device
        epochs, spe = cfg.trainer.epochs, len(self.train_batches)
        sync_every = 1 if device.type == "cpu" else cfg.trainer.log_every
        cl = device.type == "cuda" and cfg.trainer.channels_last
        with _progress(self.console) as progress:
            for epoch in range(self.start_epoch, epochs):
                start_step = self.start_step if epoch == self.start_epoch else 0
                p = self.partial if epoch == self.start_epoch else {"loss_sum": 0.0, "correct": 0, "count": 0, "seconds": 0.0}
                loss_sum = torch.tensor(p["loss_sum"], device=device, dtype=torch.float64)
                correct = torch.tensor(p["correct"], device=device, dtype=torch.int64)
                count = p["count"]
                task = progress.add_task("", total=spe, completed=start_step, epoch=f"{epoch + 1}/{epochs}",
                                         loss="-", acc="-", lr="-")
                self.model.train()
                t0 = time.perf_counter()
                step = start_step
                for x, y in self.train_batches.epoch(epoch, start_step):
                    if cl:
                        x = x.contiguous(memory_format=torch.channels_last)
                    with autocast_for(device, cfg.trainer.precision):
                        logits = self.train_model(x)
                        loss = F.cross_entropy(logits.float(), y)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.optimizer.step()
                    self.step_lrs.append(self.scheduler.get_last_lr()[0])
                    self.logger.log_step(len(self.step_lrs), self.step_lrs[-1], self.optimizer.param_groups[0].get("momentum"))
                    self.scheduler.step()
                    loss_sum += loss.detach().double() * len(y)
                    correct += (logits.detach().argmax(1) == y).sum()
                    count += len(y)
                    step += 1
                    progress.update(task, advance=1)
                    signal_name = stop["signal"]
                    if step % sync_every == 0 or step == spe:
                        loss_value, signal_name = self._agree(loss.detach(), stop["signal"])
                        if not math.isfinite(loss_value):
                            self._diverged(epoch, step)
                        # every sync point: each step on the CPU, every log_every steps and the last on CUDA
                        progress.update(task, loss=f"{loss_sum.item() / count:.3f}",
                                        acc=f"{100 * correct.item() / count:.1f}%", lr=f"{self.step_lrs[-1]:.4g}")
                    elif self.world.distributed:
                        signal_name = None  # ranks agree to stop only at sync points (_agree)
                    if signal_name and step < spe:
                        seconds = p["seconds"] + time.perf_counter() - t0
                        self.train_seconds += time.perf_counter() - t0
                        self._interrupted(epoch, step, {"loss_sum": loss_sum.item(), "correct": int(correct.item()),
                                                         "count": count, "seconds": seconds}, signal_name)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                seconds = p["seconds"] + time.perf_counter() - t0
                self.train_seconds += time.perf_counter() - t0
                if device.type == "cuda":  # constant across epochs unless something leaks
                    self.epoch_memory.append({"epoch": epoch + 1,
                                              "allocated_mib": round(torch.cuda.memory_allocated(device) / 2**20, 1),
                                              "peak_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)})
                progress.remove_task(task)
                train_loss_sum, train_correct, train_count = loss_sum.item(), correct.item(), count
                if self.world.distributed:  # sums over ranks; every rank evaluates rank 0's BN statistics
                    train_loss_sum, train_correct, train_count = distributed.all_reduce_sums(
                        train_loss_sum, train_correct, train_count, device=device)
                    distributed.broadcast_buffers(self.model)
                t_eval = time.perf_counter()
                ev = self._evaluate(outputs=epoch + 1 == epochs)  # the last one also feeds the diagnostics
                self.eval_seconds += time.perf_counter() - t_eval
                if not math.isfinite(ev["loss"]):  # e.g. weights overflowed in the last step: no checkpoint
                    self._diverged(epoch, step, "test loss")
                row = {"epoch": epoch + 1, "lr": self.step_lrs[-1], "train_loss": train_loss_sum / train_count,
                       "train_acc": train_correct / train_count, "test_loss": ev["loss"], "test_acc": ev["acc"],
                       "seconds": round(seconds, 3)}
                self.history.append(row)
                self.logger.log_epoch(row)
                log.info("epoch %2d/%d  lr %.4g  train_loss %.4f  train_acc %5.2f%%  test_loss %.4f  "
                         "test_acc %5.2f%%  %.1fs", epoch + 1, epochs, row["lr"], row["train_loss"],
                         100 * row["train_acc"], row["test_loss"], 100 * row["test_acc"], seconds)
                self.checkpoint(epoch + 1, 0)
                self.write_records()
                signal_name = self._agree(0.0, stop["signal"])[1]
                if signal_name and epoch + 1 < epochs:
                    self._interrupted(epoch + 1, 0, None, signal_name)

    def _agree(self, loss: torch.Tensor | float, signal_name: str | None) -> tuple[float, str | None]:
        """This step's loss and the stop signal, identical on every rank (a host sync).

        One process: ``loss.item()`` and the signal as received. Under torchrun: the loss averaged
        over ranks, and a signal if any rank received one (so all ranks stop, or diverge, at the
        same step and no rank is left waiting in a collective).
        """
        if not self.world.distributed:
            return float(loss), signal_name
        total, stopping = distributed.all_reduce_sums(loss, 1.0 if signal_name else 0.0, device=self.device)
        if stopping and not signal_name:
            signal_name = "SIGTERM (on another rank)"
        return total / self.world.world_size, signal_name

    def _evaluate(self, outputs: bool = False) -> dict[str, Any]:
        """Test loss and accuracy (fraction 0-1) of the whole test split; under torchrun each rank
        evaluates its block and the sums are reduced. ``outputs`` (one process only): also keep
        the predictions and probabilities in ``self.last_eval`` for :meth:`diagnostics`."""
        keep = outputs and not self.world.distributed
        ev = evaluate(self.model, self.eval_batches, self.device, self.cfg.trainer.precision, return_outputs=keep)
        if not self.world.distributed:
            self.last_eval = ev if keep else None
            return ev
        loss_sum, correct, n = distributed.all_reduce_sums(ev["loss"] * ev["n"], round(ev["acc"] * ev["n"]), ev["n"],
                                                           device=self.device)
        return {"loss": loss_sum / max(n, 1), "acc": correct / max(n, 1), "n": int(n)}

    def _diverged(self, epoch: int, step: int, what: str = "training loss") -> None:
        """Record status diverged (metrics.json ``diverged_at``: epoch, step, loss) and raise
        :class:`Diverged`; checkpoints/last.pt, written at the last finite epoch end, is kept."""
        self.status = "diverged"
        self.write_records(diverged_at={"epoch": epoch + 1, "step": step, "loss": what.split()[0]})
        if self.ckpt_path.is_file():
            kept = f"the last good checkpoint (end of epoch {epoch}) is kept: {self.ckpt_path}"
        else:
            kept = "no checkpoint was written (it diverged in the first epoch)"
        raise Diverged(
            f"{what} became non-finite at epoch {epoch + 1} step {step} (max_lr={self.lr.max_lr:.4g}); "
            f"{kept}; lower scheduler.max_lr (e.g. scheduler.max_lr={self.lr.max_lr / 10:.3g} or find)"
        )

    def _interrupted(self, epoch: int, step: int, partial: dict | None, signame: str) -> None:
        self.status = "interrupted"
        if partial and self.world.distributed:  # the checkpoint holds the epoch's global sums
            partial = dict(partial)
            partial["loss_sum"], correct, partial["count"] = distributed.all_reduce_sums(
                partial["loss_sum"], partial["correct"], partial["count"], device=self.device)
            partial["correct"], partial["count"] = int(correct), int(partial["count"])
        self.checkpoint(epoch, step, partial)
        self.write_records(interrupted_at={"epoch": epoch + 1, "step": step, "signal": signame})
        raise Interrupted(
            f"{signame}: stopped at {position(epoch, step)}; continue with resnet-train resume={self.ckpt_path} "
            "(the resumed run writes a new run folder; this one keeps status interrupted)"
        )

    def finish(self) -> dict[str, Any]:
        self.status = "completed"
        for w in health_warnings(self.history, len(self.data.classes), self.lr.max_lr):
            log.warning(w)
        if not self.world.is_main:  # plots and diagnostics: rank 0 only
            return self.metrics()
        t0 = time.perf_counter()
        plots.save_figure(plots.plot_lr_schedule(self.step_lrs, len(self.train_batches), self.cfg.scheduler.max_epoch),
                          self.run_dir / "plots" / "lr_schedule.png")
        plots.save_figure(plots.plot_curves(self.history), self.run_dir / "plots" / "curves.png")
        extra = self.diagnostics()
        self.diagnostics_seconds = time.perf_counter() - t0
        return self.write_records(**extra)

    def diagnostics(self) -> dict[str, Any]:
        """plots/misclassified.png, confusion_matrix.png, gradcam/ and {class_acc, confusion}, from
        the last epoch's evaluation (the test set is not evaluated again)."""
        ev = self.last_eval or evaluate(self.model, self.test_batches, self.device, self.cfg.trainer.precision,
                                        return_outputs=True)
        e = self.cfg.explain
        return explain.write_diagnostics(
            self.model, self.test_batches.x, self.test_batches.y, ev["preds"], ev["probs"], self.data.classes,
            self.data.mean, self.data.std, self.run_dir, count=e.count, order=e.order, method=e.method,
            layers=e.layers, target=e.target, seed=int(self.cfg.seed), console=self.console)


def run(cfg: DictConfig, run_dir: str | Path, started: float | None = None) -> RunResult:
    """Run the whole recipe with ``cfg`` (a composed ``train`` config) into ``run_dir``.

    ``started``: ``time.perf_counter()`` when the command began (the CLI's entry point), so
    ``metrics.json``'s ``timings`` count the start-up too; default: now.

    Raises:
        ConfigError, DataError, CheckpointError: bad input, before any training.
        Diverged: the loss became non-finite (metrics.json has status "diverged").
        Interrupted: SIGINT/SIGTERM (metrics.json "interrupted"; resumable checkpoint written).
    """
    trainer = Trainer(cfg, Path(run_dir), started=started)
    # a signal during set-up (data loading, LR range test) stops at once: nothing to checkpoint yet
    with stop_signals(immediate=True) as stop:
        trainer.setup()
        stop["immediate"] = False  # from here: finish the step, checkpoint, exit 130
        try:
            trainer.train(stop)
            metrics = trainer.finish()
            # logger=tensorboard: every plots/*.png (curves, schedule, misclassified, Grad-CAM) now exists
            trainer.logger.log_images(trainer.run_dir / "plots", len(trainer.history))
            trainer.logger.finish(metrics)
        finally:
            trainer.logger.close()
    t = metrics["timings"] = trainer.timings()  # the whole command, loggers included
    if trainer.world.is_main:
        write_json(trainer.run_dir / "metrics.json", metrics)
    log.info("done: test_acc %.2f%%, run folder %s", 100 * metrics["test_acc"], trainer.run_dir)
    log.info("time: %.1f s = startup %.1f + data %.1f + batches %.1f + range test %.1f + train %.1f + eval %.1f "
             "+ diagnostics %.1f + other %.1f", t["total"], t["startup"], t["data"], t["batches"], t["lr_finder"],
             t["train"], t["eval"], t["diagnostics"], t["other"])
    trainer.model.eval()
    return RunResult(metrics=metrics, run_dir=trainer.run_dir, model=trainer.model,
                     checkpoint=trainer.ckpt_path, data=trainer.data)
