"""The recipe as one function, :func:`run`: build data -> build model -> resolve the LRs (range
test) -> fit with One Cycle -> report. Each step is a function below; the Python API
(:mod:`resnet_cli.api`) reuses them (``find_lr`` runs ``prepare``, ``build_data``,
``build_model`` and ``resolve_run_lrs``, nothing else).

What lands in the run folder: :mod:`resnet_cli.run_folder`. The training loop:
:func:`resnet_cli.fit.fit`. What a resumed run takes from its checkpoint: :mod:`resnet_cli.resume`.
"""

from __future__ import annotations

import logging
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from . import distributed, plots, previews
from .batches import TestBatches, build_train_batches
from .checkpoint import RESUME_KEYS, check_keys, load_checkpoint
from .cli import is_first_job, sweep_group
from .config import check_steps, resolve_device, resolve_fused, validate
from .data import DataBundle, load_data
from .diagnostics import write_diagnostics
from .errors import CheckpointError, ConfigError, Interrupted, StopRequest
from .fit import evaluate, fit, stop_signals
from .layers import TargetLayers, model_summary, resolve_target_layers, summary_line
from .loggers import build_logger
from .lr_finder import auto_smooth_f, find_lr
from .models import count_parameters
from .resume import check_resume_overrides, command_line_overrides, resume_config
from .run_folder import Run, check_writable, health_warnings, position
from .run_status import read_metrics
from .schedule import LRFindResult, resolve_lrs

log = logging.getLogger("resnet_cli")


@dataclass
class RunResult:
    """What a finished run returns: ``metrics`` (as in metrics.json), the run folder, the trained
    model (on its training device, eval mode) and the checkpoint path."""

    metrics: dict[str, Any]
    run_dir: Path
    model: nn.Module
    checkpoint: Path
    data: DataBundle | None = field(default=None, repr=False)


def run(cfg: DictConfig, run_dir: str | Path, started: float | None = None) -> RunResult:
    """Run the whole recipe with ``cfg`` (a composed ``train`` config) into ``run_dir``.

    ``started``: ``time.perf_counter()`` when the command began (the CLI's entry point), so
    ``metrics.json``'s ``timings`` count the start-up too; default: now.

    Raises:
        ConfigError, DataError, CheckpointError: bad input, before any training.
        Diverged: the loss became non-finite (metrics.json has status "diverged").
        Interrupted: SIGINT/SIGTERM (metrics.json "interrupted"; resumable checkpoint written).
    """
    r = Run(cfg, Path(run_dir), distributed.current(), time.perf_counter() if started is None else started)
    console = Console(stderr=True, quiet=not r.world.is_main)  # torchrun: rank 0 shows progress
    if r.world.is_main:
        log.info("run folder %s", r.run_dir)  # at the start, so a long run can be watched (and found)
    # a signal during set-up (data loading, LR range test) stops at once: nothing to checkpoint yet
    with stop_signals(immediate=True) as stop:
        resume = prepare(r)  # the checkpoint's config when resuming, checks, device, seeds
        r.data, train_batches, test_batches = build_data(r)
        if not resume:  # the subset was not known at validation (data.train_subset=null)
            check_steps(r.cfg, len(train_batches), f"{len(r.data.train_labels)} training images // "
                        f"data.batch_size={r.cfg.data.batch_size}")
        r.model = build_model(r.cfg, len(r.data.classes), r.device)
        r.target_layers = describe(r, train_batches)  # previews, model_summary.txt, explain.layers
        if resume:
            restore(r, resume)  # the interrupted run's weights, LRs, history and position
        else:
            r.lr = resolve_run_lrs(r, train_batches, console)
        train_model, train_batches, eval_batches = distribute(r, train_batches, test_batches)
        build_optimizer(r, len(train_batches), resume)
        logger = build_logger(r.cfg.get("logger"), r.run_dir, enabled=r.world.is_main, group=sweep_group())
        stop["immediate"] = False  # from here: finish the step, checkpoint, exit 130
        try:
            logger.start(hparams(r))
            fit(r, train_model, train_batches, eval_batches, logger, stop, console)
            stop["immediate"] = True  # training is over and checkpointed: a signal now stops at once
            try:
                extra = report(r, test_batches, console)
            except StopRequest as ex:
                _stopped_in_diagnostics(r, ex)
            logger.log_images(r.run_dir / "plots", len(r.history))  # every plots/*.png exists now
            logger.finish(r.metrics(**extra))
        finally:
            logger.close()
    metrics = r.write_records(**extra)  # once, with the whole command's timings (loggers included)
    t = metrics["timings"]
    log.info("done: test_acc %.2f%%, run folder %s", 100 * metrics["test_acc"], r.run_dir)
    log.info("time: %.1f s = startup %.1f + data %.1f + batches %.1f + range test %.1f + train %.1f + eval %.1f "
             "+ diagnostics %.1f + other %.1f", t["total"], t["startup"], t["data"], t["batches"], t["lr_finder"],
             t["train"], t["eval"], t["diagnostics"], t["other"])
    r.model.eval()
    return RunResult(metrics=metrics, run_dir=r.run_dir, model=r.model, checkpoint=r.ckpt_path, data=r.data)


# -- the steps -------------------------------------------------------------------------------

def prepare(r: Run) -> dict | None:
    """Resume (the checkpoint's config), checks, device and seeds; returns the checkpoint to
    resume from, or None.

    Raises:
        ConfigError: a bad config or an unwritable run folder. CheckpointError: a bad ``resume``.
    """
    resume = None
    if r.cfg.resume:
        resume = load_checkpoint(r.cfg.resume, key="resume")
        if "optimizer" not in resume:
            raise CheckpointError(f"{r.cfg.resume} holds no optimizer state and cannot be resumed")
        check_keys(resume, r.cfg.resume, RESUME_KEYS)
        check_resume_overrides(r.cfg, resume, r.cfg.resume, command_line_overrides())
        r.cfg = resume_config(r.cfg, resume)
        validate(r.cfg)  # the merged config (the entry point validated the command line's)
        if resume["epoch"] >= r.cfg.trainer.epochs:
            raise ConfigError(f"resume={r.cfg.resume}: that run completed all {r.cfg.trainer.epochs} epochs, so "
                              "there is nothing left to do; to train longer start a new run (without resume=) "
                              "with a larger trainer.epochs")
    if r.world.distributed:
        distributed.check_batch_size(r.cfg.data.batch_size, r.world.world_size)
    if r.world.is_main:
        check_writable(r.run_dir)
    r.device = resolve_device(r.cfg.trainer.device)
    if r.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    seed_everything(r.cfg.seed)
    return resume


def build_data(r: Run) -> tuple[DataBundle, Any, TestBatches]:
    """Load ``cfg.data`` and build the augmented training batches (``cfg.augment``) and the test
    batches on the device; returns ``(data, train_batches, test_batches)``."""
    cfg, t0 = r.cfg, time.perf_counter()
    data = load_data(cfg.data, cfg.seed)
    r.seconds["data"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    train_batches = build_train_batches(data, cfg, r.device)
    test_batches = TestBatches(data.test_images, data.test_labels, data.mean, data.std, cfg.data.batch_size, r.device)
    if r.device.type == "cuda":
        torch.cuda.synchronize()
    r.seconds["batches"] = time.perf_counter() - t0
    return data, train_batches, test_batches


def build_model(cfg: DictConfig, num_classes: int, device: torch.device) -> nn.Module:
    """``cfg.model`` instantiated for ``num_classes`` on ``device`` (channels-last with
    ``trainer.channels_last``)."""
    model = instantiate(cfg.model, num_classes=num_classes).to(device)
    if cfg.trainer.channels_last:
        model = model.to(memory_format=torch.channels_last)
    log.info("model %s: %s parameters, device %s", cfg.model._target_.rsplit(".", 1)[-1],
             f"{count_parameters(model):,}", device)
    return model


def describe(r: Run, train_batches) -> TargetLayers:
    """What the run folder shows before training: plots/samples.png and plots/augmentations.png
    (drawn from ``train_batches``; private RNGs, training is unaffected) and model_summary.txt
    (rank 0); returns the Grad-CAM target layers (``explain.layers``), probed once, so a bad
    layer fails here, before training."""
    cfg = r.cfg
    if r.world.is_main:
        previews.write_previews(r.data, train_batches, r.run_dir / "plots", int(cfg.seed),
                                epochs=int(cfg.trainer.epochs))
    table = model_summary(r.model, cfg.data.image_size, r.run_dir / "model_summary.txt" if r.world.is_main else None)
    if is_first_job():  # one line once per command; every job keeps the whole table in model_summary.txt
        log.info("model summary: %s (the layer table: model_summary.txt)", summary_line(table))
    return resolve_target_layers(r.model, cfg.explain.layers, cfg.data.image_size)


def restore(r: Run, resume: dict) -> None:
    """Continue an interrupted run (:meth:`Run.restore`: weights, LRs, history, position); its
    plots/lr_finder.png is drawn again into this run's folder."""
    r.restore(resume)
    if r.world.is_main and r.lr.lrs:
        plot_range_test(r.lr, r.run_dir)
    source = read_metrics(Path(r.cfg.resume).resolve().parent.parent) or {}
    kept = f"keeps status {source['status']}" if source.get("status") else "is left as it is"
    log.info("resumed from %s at %s into this new run folder %s; the source run's folder %s",
             r.cfg.resume, position(r.epoch, r.step), r.run_dir, kept)


def resolve_run_lrs(r: Run, train_batches, console: Console) -> LRFindResult:
    """max_lr and min_lr as given, or found by the range test on ``train_batches`` (rank 0;
    broadcast under torchrun); writes plots/lr_finder.png."""
    t0 = time.perf_counter()
    lr = None
    if r.world.is_main:
        s, f = r.cfg.scheduler, r.cfg.lr_finder
        make_optimizer = _optimizer_factory(r)

        def range_test() -> LRFindResult:
            num_iter = f.num_iter or s.max_epoch * len(train_batches)  # null: the warm-up's length
            smooth_f = f.smooth_f if f.smooth_f is not None else auto_smooth_f(num_iter)
            with _range_test_progress(console, num_iter) as bar:
                return find_lr(r.model, make_optimizer, train_batches, r.device, step_mode=f.step_mode,
                               start_lr=f.start_lr, end_lr=f.end_lr, num_iter=num_iter, rule=f.rule, min_rule=f.min_rule,
                               smooth_f=smooth_f, diverge_th=f.diverge_th, progress=bar,
                               precision=r.cfg.trainer.precision, channels_last=r.cfg.trainer.channels_last)

        lr = resolve_lrs(s.max_lr, s.min_lr, range_test, plot=lambda found: plot_range_test(found, r.run_dir))
    if r.world.distributed:  # rank 0's range test decides for all
        lr = distributed.broadcast_object(lr)
    r.seconds["lr_finder"] = time.perf_counter() - t0
    return lr


def distribute(r: Run, train_batches, test_batches: TestBatches) -> tuple[nn.Module, Any, TestBatches]:
    """The module the loop trains through and the batches each process sees.

    One process: the model itself (``torch.compile``d with ``trainer.compile``) and all batches.
    Under torchrun: ``DistributedDataParallel(model)`` (compiled after wrapping); each rank
    trains on its slice of every global batch and evaluates its block of the test split.
    Evaluation, the range test and checkpoints use the plain module (unprefixed keys).
    """
    eval_batches = test_batches
    if r.world.distributed:
        w, d = r.world, r.data
        train_batches = distributed.ShardedBatches(train_batches, w.rank, w.world_size, r.cfg.data.batch_size)
        rows = distributed.shard_rows(len(d.test_labels), w.rank, w.world_size)
        eval_batches = TestBatches(d.test_images[rows], d.test_labels[rows], d.mean, d.std, r.cfg.data.batch_size,
                                   r.device)
    ddp_model = distributed.wrap(r.model, r.device)
    return (torch.compile(ddp_model) if r.cfg.trainer.compile else ddp_model), train_batches, eval_batches


def build_optimizer(r: Run, steps_per_epoch: int, resume: dict | None = None) -> None:
    """``r.optimizer`` (``cfg.optimizer``, SGD) and ``r.scheduler`` (``cfg.scheduler``, One Cycle
    between ``r.lr``'s min_lr and max_lr); a resumed run restores both and the torch RNG."""
    cfg = r.cfg
    r.optimizer = _optimizer_factory(r)(r.model.parameters(), lr=r.lr.max_lr)
    r.scheduler = instantiate(cfg.scheduler)(r.optimizer, max_lr=r.lr.max_lr, min_lr=r.lr.min_lr,
                                             epochs=cfg.trainer.epochs, steps_per_epoch=steps_per_epoch)
    if resume is not None:
        r.optimizer.load_state_dict(resume["optimizer"])
        r.scheduler.load_state_dict(resume["scheduler"])
        torch.set_rng_state(resume["torch_rng"])


def report(r: Run, test_batches: TestBatches, console: Console) -> dict[str, Any]:
    """Status completed, health warnings, plots/lr_schedule.png, plots/curves.png and the
    diagnostics (misclassified, confusion, Grad-CAM) from the last epoch's evaluation; returns
    what the diagnostics add to metrics.json (``class_acc``, ``confusion``; nothing on ranks > 0)."""
    r.status = "completed"
    for w in health_warnings(r.history, len(r.data.classes), r.lr.max_lr):
        log.warning(w)
    if not r.world.is_main:  # plots and diagnostics: rank 0 only
        return {}
    t0 = time.perf_counter()
    plots.save_figure(plots.plot_lr_schedule(r.step_lrs, len(r.step_lrs) // max(len(r.history), 1),
                                             r.cfg.scheduler.max_epoch), r.run_dir / "plots" / "lr_schedule.png")
    plots.save_figure(plots.plot_curves(r.history), r.run_dir / "plots" / "curves.png")
    # the last epoch's evaluation; under torchrun (each rank saw its block) rank 0 evaluates it all
    ev = r.last_eval or evaluate(r.model, test_batches, r.device, r.cfg.trainer.precision, return_outputs=True,
                                 tta_flip=bool(r.cfg.trainer.get("tta_flip", False)))
    e = r.cfg.explain
    extra = write_diagnostics(
        r.model, test_batches.x, test_batches.y, ev["preds"], ev["probs"], r.data.classes, r.data.mean, r.data.std,
        r.run_dir, count=e.count, order=e.order, method=e.method, layers=r.target_layers, target=e.target,
        seed=int(r.cfg.seed), console=console)
    r.seconds["diagnostics"] = time.perf_counter() - t0
    return extra


# -- helpers of the steps ---------------------------------------------------------------------

def plot_range_test(result: LRFindResult, run_dir: Path) -> None:
    """plots/lr_finder.png: the range test's curve with the chosen max_lr and min_lr."""
    plots.save_figure(plots.plot_lr_finder(result.lrs, result.losses, result.max_lr, result.min_lr, result.rule,
                                           result.accs, result.step_mode or "exp", result.smooth_f,
                                           result.earlier),
                      run_dir / "plots" / "lr_finder.png")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _stopped_in_diagnostics(r: Run, ex: StopRequest) -> None:
    """A signal during the end-of-run diagnostics: training finished and is checkpointed, so stop
    at once; metrics.json says status interrupted with ``interrupted_at.phase`` diagnostics."""
    r.status = "interrupted"
    message = (f"{ex.signame}: stopped during the end-of-run diagnostics; training completed all "
               f"{len(r.history)} epochs and its checkpoint is kept: {r.ckpt_path} (resnet-gradcam "
               f"ckpt={r.ckpt_path} draws the diagnostics)")
    r.write_records(interrupted_at={"phase": "diagnostics", "signal": ex.signame})
    raise Interrupted(message) from None


def hparams(r: Run) -> dict[str, Any]:
    """The settings a sweep varies, for the logger's hyper-parameter table (LRs as used)."""
    c = r.cfg
    return {"max_lr": r.lr.max_lr, "min_lr": r.lr.min_lr, "lr_rule": r.lr.rule,
            "weight_decay": float(c.optimizer.weight_decay), "batch_size": int(c.data.batch_size),
            "epochs": int(c.trainer.epochs), "max_epoch": int(c.scheduler.max_epoch),
            "model": str(c.model._target_).rsplit(".", 1)[-1],
            "augment": " ".join(f"{k}={v}" for k, v in c.augment.items() if not k.startswith("_")),
            "seed": int(c.seed), "world_size": r.world.world_size}


def _optimizer_factory(r: Run):
    """``cfg.optimizer`` as a partial (``params``, ``lr`` -> optimizer), fused on CUDA when possible."""
    return instantiate(r.cfg.optimizer, fused=resolve_fused(r.cfg.optimizer.get("fused"), r.device))


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
