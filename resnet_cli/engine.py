"""The recipe as one function, :func:`run`: data -> model -> LRs (range test) -> fit with One
Cycle -> report, each step a function below that returns what it produces (the API's ``find_lr``
runs the steps up to the LRs). The front ends (:mod:`resnet_cli.cli.build`) compose, validate and
build a :class:`Recipe`: the typed config and the objects its ``_target_``s name; nothing here reads
Hydra or OmegaConf. State and records: :mod:`resnet_cli.core.run_folder`; the loop:
:func:`resnet_cli.core.fit.fit`.
"""

from __future__ import annotations

import logging
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from .core import distributed
from .core.checkpoint import load_weights, run_dir_of
from .core.ema import build_ema
from .core.fit import Feed, evaluate_batches, fit, stop_signals
from .core.lr_finder import auto_smooth_f, find_lr
from .core.run_folder import (Records, RunResult, RunState, Timings, check_writable, health_warnings, position,
                              read_metrics_json)
from .core.schedule import LRFindResult, LRs, resolve_lrs
from .core.settings import JobInfo, RunConfig, check_steps
from .data import DataBundle, load_data
from .data.batches import TestBatches
from .diagnostics import plots, previews
from .diagnostics.report import write_diagnostics
from .errors import ConfigError, Interrupted, StopRequest
from .models import count_parameters
from .models.summary import TargetLayers, model_summary, resolve_target_layers, summary_line
from .tracking import build_logger


@dataclass(frozen=True)
class Recipe:
    """What :func:`run` runs, built by the front ends: ``config``; ``model(num_classes=)`` an
    ``nn.Module``; ``optimizer(params, lr=)``; ``scheduler(optimizer, max_lr=, min_lr=, epochs=,
    steps_per_epoch=)`` (One Cycle, stepped per batch); ``augment(bundle, device, batch_size=, seed=,
    num_workers=, image_size=)`` the training batches; ``loggers``: tracker name -> ``factory(run_dir=,
    group=)``; ``device``; ``resume``: the checked checkpoint a resumed run continues, or None."""

    config: RunConfig
    model: Callable[..., nn.Module]
    optimizer: Callable[..., torch.optim.Optimizer]
    scheduler: Callable[..., Any]
    augment: Callable[..., Any]
    device: torch.device
    loggers: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    resume: dict | None = None

log = logging.getLogger("resnet_cli")


def run(recipe: Recipe, run_dir: str | Path, started: float | None = None, job: JobInfo = JobInfo()) -> RunResult:
    """Run the whole recipe into ``run_dir``.

    ``started``: ``time.perf_counter()`` when the command began (metrics.json's ``timings`` count
    the start-up too); default: now. ``job``: where the run sits in its command (a sweep's job).

    Raises:
        ConfigError, DataError, CheckpointError: bad input, before any training.
        Diverged: the loss became non-finite (metrics.json has status "diverged").
        Interrupted: SIGINT/SIGTERM (metrics.json "interrupted"; resumable checkpoint written).
    """
    timings = Timings(started=time.perf_counter() if started is None else started)
    world, run_dir, cfg, resume = distributed.current(), Path(run_dir), recipe.config, recipe.resume
    console = Console(stderr=True, quiet=not world.is_main)  # torchrun: rank 0 shows progress
    if world.is_main:
        log.info("run folder %s", run_dir)
    with stop_signals() as stop:  # set-up (data, range test): a signal stops at once, nothing to checkpoint yet
        prepare(cfg, run_dir, world, recipe.device)
        with timings.phase("data"):
            data = load_data(cfg.data, cfg.seed)
            if resume:  # a moved data.root is accepted only when it holds the run's own images
                check_moved_data(resume, data, cfg.resume)
        with timings.phase("batches"):
            train_batches, test_batches = build_batches(recipe, data)
        if not resume:  # the subset was not known at validation (data.train_subset=null)
            check_steps(cfg, len(train_batches), f"{len(data.train_labels)} training images // "
                        f"data.batch_size={cfg.data.batch_size}")
        model = build_model(recipe, len(data.classes))
        records = Records(run_dir, world, cfg, data, recipe.device, timings, console)
        preview(model, train_batches, records, job.first)
        target_layers = resolve_target_layers(model, cfg.explain.layers, cfg.data.image_size)  # fails before training
        if resume:
            state = restore(resume, model, records)
        else:
            with timings.phase("lr_finder"):
                state = RunState(model, resolve_run_lrs(model, train_batches, records, recipe.optimizer))
        state.ema = build_ema(model, cfg.trainer.ema_decay)  # after the range test: from the initial weights
        if state.ema is not None and resume is not None and "ema" in resume:
            state.ema.load_state_dict(resume["ema"])
        feed = distribute(model, train_batches, test_batches, records)
        state.optimizer, state.scheduler = build_optimizer(recipe, model, state.lr, len(feed.train), resume)
        records.logger = build_logger(recipe.loggers, run_dir, enabled=world.is_main, group=job.sweep_dir)
        stop.immediate = False  # from here: finish the step, checkpoint, exit 130
        try:
            records.logger.start(hparams(cfg, state.lr, world))
            fit(state, feed, records, stop)
            stop.immediate = True  # training is over and checkpointed: a signal now stops at once
            state.status = "completed"
            try:
                with timings.phase("diagnostics"):
                    extra = report(state, test_batches, target_layers, records, show_table=not job.multirun)
            except StopRequest as ex:
                _stopped_in_diagnostics(state, records, ex)
            records.logger.log_images(run_dir / "plots", len(state.history))  # every plots/*.png exists now
            records.logger.finish(records.metrics_json(state, **extra))
        finally:
            records.logger.close()
    metrics = records.write(state, **extra)  # once, with the whole command's timings (loggers included)
    t = metrics["timings"]
    log.info("done: test_acc %.2f%%, run folder %s", 100 * metrics["test_acc"], run_dir)
    log.info("time: %.1f s = startup %.1f + data %.1f + batches %.1f + range test %.1f + train %.1f + eval %.1f "
             "+ diagnostics %.1f + other %.1f", t["total"], t["startup"], t["data"], t["batches"], t["lr_finder"],
             t["train"], t["eval"], t["diagnostics"], t["other"])
    model.eval()
    return RunResult(metrics=metrics, run_dir=run_dir, model=model, checkpoint=records.checkpoint_path, data=data)


def prepare(cfg: RunConfig, run_dir: Path, world: distributed.World, device: torch.device) -> None:
    """The batch size under torchrun, a writable run folder, cuDNN autotuning on CUDA and the seeds.

    Raises:
        ConfigError: a batch size torchrun's ranks cannot share, or an unwritable run folder.
    """
    if world.distributed:
        distributed.check_batch_size(cfg.data.batch_size, world.world_size)
    if world.is_main:
        check_writable(run_dir)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    seed_everything(cfg.seed)


def check_moved_data(ckpt: dict, data: Any, path: Any) -> None:
    """A resumed run's data must be the run's: the class names and the training images' per-channel
    mean and std (computed from the images, so a fingerprint of them) equal the checkpoint's.

    Raises:
        ConfigError: naming ``data.root`` and the first difference.
    """
    theirs = (list(ckpt["classes"]), [float(m) for m in ckpt["mean"]], [float(x) for x in ckpt["std"]])
    ours = (list(data.classes), [float(m) for m in data.mean], [float(x) for x in data.std])
    for what, a, b in zip(("class names", "training images' mean", "training images' std"), ours, theirs):
        if a != b:
            raise ConfigError(f"data.root={data.root} does not hold the data of resume={path}: its {what} "
                              f"{a} differ from the run's {b}; point data.root at the run's own images")


def build_batches(recipe: Recipe, data: DataBundle) -> tuple[Any, TestBatches]:
    """``(train_batches, test_batches)`` of ``data`` on the recipe's device, the first augmented."""
    d, device = recipe.config.data, recipe.device
    train_batches = recipe.augment(data, device, batch_size=d.batch_size, seed=recipe.config.seed,
                                   num_workers=d.num_workers, image_size=d.image_size)
    test_batches = TestBatches(data.test_images, data.test_labels, data.mean, data.std, d.batch_size, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return train_batches, test_batches


def build_model(recipe: Recipe, num_classes: int) -> nn.Module:
    """The recipe's model for ``num_classes`` on its device (channels-last with ``trainer.channels_last``)."""
    cfg, device = recipe.config, recipe.device
    model = recipe.model(num_classes=num_classes).to(device)
    if cfg.trainer.channels_last:
        model = model.to(memory_format=torch.channels_last)
    log.info("model %s: %s parameters, device %s", cfg.model.rsplit(".", 1)[-1], f"{count_parameters(model):,}", device)
    return model


def preview(model: nn.Module, train_batches, records: Records, first_job: bool = True) -> None:
    """plots/samples.png, plots/augmentations.png (private RNGs: training is unaffected) and
    model_summary.txt, on rank 0; the summary's one line is logged by the ``first_job`` only."""
    cfg, main = records.config, records.world.is_main
    if main:
        previews.write_previews(records.data, train_batches, records.run_dir / "plots", cfg.seed,
                                epochs=cfg.trainer.epochs)
    table = model_summary(model, cfg.data.image_size, records.run_dir / "model_summary.txt" if main else None)
    if first_job:
        log.info("model summary: %s (the layer table: model_summary.txt)", summary_line(table))


def restore(ckpt: dict, model: nn.Module, records: Records) -> RunState:
    """The checkpoint's state around ``model`` (weights loaded); redraws plots/lr_finder.png here.

    Raises:
        CheckpointError: the weights do not fit the model (names the first mismatching key)."""
    path = records.config.resume
    load_weights(model, ckpt["model"], path, key="resume")
    state = RunState.from_checkpoint(ckpt, model, records.world)
    if records.world.is_main and isinstance(state.lr, LRFindResult):
        plot_range_test(state.lr, records.run_dir)
    source = read_metrics_json(run_dir_of(path)) or {}
    kept = f"keeps status {source['status']}" if source.get("status") else "is left as it is"
    log.info("resumed from %s at %s into this new run folder %s; the source run's folder %s",
             path, position(state.epoch, state.step), records.run_dir, kept)
    return state


def resolve_run_lrs(model: nn.Module, train_batches, records: Records,
                    optimizer: Callable[..., torch.optim.Optimizer]) -> LRs | LRFindResult:
    """max_lr and min_lr as given, or found by the range test with ``optimizer`` (rank 0, broadcast
    under torchrun); writes plots/lr_finder.png."""
    cfg, world, lr = records.config, records.world, None
    if world.is_main:
        s, f = cfg.scheduler, cfg.lr_finder

        def range_test() -> LRFindResult:
            num_iter = f.num_iter or s.max_epoch * len(train_batches)  # null: the warm-up's length
            smooth_f = f.smooth_f if f.smooth_f is not None else auto_smooth_f(num_iter)
            with _range_test_progress(records.console, num_iter) as bar:
                return find_lr(model, optimizer, train_batches, records.device,
                               step_mode=f.step_mode, start_lr=f.start_lr, end_lr=f.end_lr, num_iter=num_iter,
                               rule=f.rule, min_rule=f.min_rule, smooth_f=smooth_f, diverge_th=f.diverge_th,
                               progress=bar, precision=cfg.trainer.precision, channels_last=cfg.trainer.channels_last)

        lr = resolve_lrs(s.max_lr, s.min_lr, range_test, plot=lambda found: plot_range_test(found, records.run_dir))
    if world.distributed:
        lr = distributed.broadcast_object(lr)
    return lr


def distribute(model: nn.Module, train_batches, test_batches: TestBatches, records: Records) -> Feed:
    """The module the loop trains through (DDP-wrapped under torchrun, then ``torch.compile``d with
    ``trainer.compile``) and this rank's share of the train and test batches. Evaluation, the range
    test and checkpoints use the plain ``model`` (unprefixed keys)."""
    cfg, w, d, eval_batches = records.config, records.world, records.data, test_batches
    if w.distributed:
        train_batches = distributed.ShardedBatches(train_batches, w.rank, w.world_size, cfg.data.batch_size)
        rows = distributed.shard_rows(len(d.test_labels), w.rank, w.world_size)
        eval_batches = TestBatches(d.test_images[rows], d.test_labels[rows], d.mean, d.std, cfg.data.batch_size,
                                   records.device)
    ddp_model = distributed.wrap(model, records.device)
    return Feed(torch.compile(ddp_model) if cfg.trainer.compile else ddp_model, train_batches, eval_batches)


def build_optimizer(recipe: Recipe, model: nn.Module, lr: LRs | LRFindResult, steps_per_epoch: int,
                    resume: dict | None = None) -> tuple[torch.optim.Optimizer, Any]:
    """``(optimizer, scheduler)`` of the recipe (One Cycle between ``lr``'s min_lr and max_lr);
    ``resume`` restores both and the torch RNG."""
    optimizer = recipe.optimizer(model.parameters(), lr=lr.max_lr)
    scheduler = recipe.scheduler(optimizer, max_lr=lr.max_lr, min_lr=lr.min_lr, epochs=recipe.config.trainer.epochs,
                                 steps_per_epoch=steps_per_epoch)
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        torch.set_rng_state(resume["torch_rng"])
    return optimizer, scheduler


def report(state: RunState, test_batches: TestBatches, target_layers: TargetLayers, records: Records,
           show_table: bool = True) -> dict[str, Any]:
    """Health warnings, plots/lr_schedule.png, plots/curves.png and the diagnostics (Grad-CAM on
    ``target_layers``; the class-wise table printed with ``show_table``, off in a sweep's jobs); returns
    their metrics.json keys (``class_acc``, ``confusion``; {} on ranks > 0)."""
    cfg, run_dir = records.config, records.run_dir
    for w in health_warnings(state.history, len(records.data.classes), state.lr.max_lr):
        log.warning(w)
    if not records.world.is_main:
        return {}
    plots.save_figure(plots.plot_lr_schedule(state.step_lrs, len(state.step_lrs) // max(len(state.history), 1),
                                             cfg.scheduler.max_epoch), run_dir / "plots" / "lr_schedule.png")
    plots.save_figure(plots.plot_curves(state.history), run_dir / "plots" / "curves.png")
    # under torchrun each rank saw its block: rank 0 evaluates it all
    ev = state.last_eval or evaluate_batches(state.model, test_batches, records.device, cfg.trainer.precision,
                                             return_outputs=True, tta_flip=cfg.trainer.tta_flip)
    e, d = cfg.explain, records.data
    return write_diagnostics(
        state.model, test_batches.x, test_batches.y, ev["preds"], ev["probs"], d.classes, d.mean, d.std, run_dir,
        count=e.count, order=e.order, method=e.method, layers=target_layers, target=e.target, seed=cfg.seed,
        console=records.console, paths=d.test_paths, show_table=show_table)


def plot_range_test(result: LRFindResult, run_dir: Path) -> None:
    """plots/lr_finder.png: the range test's curve with the chosen max_lr and min_lr."""
    r = result
    plots.save_figure(plots.plot_lr_finder(r.lrs, r.losses, r.max_lr, r.min_lr, r.rule, r.accs, r.step_mode or "exp",
                                           r.smooth_f, r.earlier), run_dir / "plots" / "lr_finder.png")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _stopped_in_diagnostics(state: RunState, records: Records, ex: StopRequest) -> None:
    """A signal during the diagnostics: training is checkpointed, so record status interrupted and stop."""
    state.status = "interrupted"
    ckpt = records.checkpoint_path
    message = (f"{ex.signame}: stopped during the end-of-run diagnostics; training completed all "
               f"{len(state.history)} epochs and its checkpoint is kept: {ckpt} (resnet-gradcam "
               f"ckpt={ckpt} draws the diagnostics)")
    records.write(state, interrupted_at={"phase": "diagnostics", "signal": ex.signame})
    raise Interrupted(message) from None


def hparams(cfg: RunConfig, lr: LRs | LRFindResult, world: distributed.World) -> dict[str, Any]:
    """The settings a sweep varies, for the logger's hyper-parameter table (LRs as used)."""
    return {"max_lr": lr.max_lr, "min_lr": lr.min_lr, "lr_rule": lr.rule, "weight_decay": cfg.weight_decay,
            "batch_size": cfg.data.batch_size, "epochs": cfg.trainer.epochs, "max_epoch": cfg.scheduler.max_epoch,
            "model": cfg.model.rsplit(".", 1)[-1], "augment": " ".join(f"{k}={v}" for k, v in cfg.augment.items()),
            "seed": cfg.seed, "world_size": world.world_size}


@contextmanager
def _range_test_progress(console: Console, total: int) -> Iterator:
    """A rich bar for the range test: yields a wrapper for torch-lr-finder's step loop."""
    with Progress(TextColumn("[bold]LR range test"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("", total=total)

        def bar(steps):
            progress.reset(task)  # a repeated (zoomed) test starts the bar again
            for i in steps:
                yield i
                progress.advance(task)

        yield bar
