"""The training loop: per step forward, backward, optimizer and One Cycle step; per epoch the test
pass (:func:`evaluate_batches`), the records and a checkpoint. Loss and accuracy sums stay on the device; the host
syncs (progress, non-finite check, torchrun's agreement to stop) every ``trainer.log_every`` steps
on CUDA (the airbench habit) and every step on the CPU, where a sync costs nothing.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, NamedTuple

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn
from torch.nn import functional as F

from . import distributed
from ..errors import Diverged, Interrupted, StopRequest
from .precision import autocast
from .run_folder import Records, RunState, Stop, empty_partial, position

log = logging.getLogger("resnet_cli")


@torch.inference_mode()
def evaluate_batches(model: nn.Module, batches, device: torch.device, precision: str = "fp32",
                     return_outputs: bool = False, tta_flip: bool = False,
                     world: distributed.World | None = None) -> dict[str, Any]:
    """``{"loss": mean cross-entropy (nats per image), "acc": fraction 0-1, "n"}`` of ``model`` over
    ``batches`` (float (N, 3, H, W) images, int64 (N,) labels on ``device``) under ``precision``'s autocast.

    ``tta_flip``: logits averaged over each image and its mirror (airbench94's ``0.5 * (net(x) +
    net(x.flip(-1)))``). ``world`` (torchrun): sums reduced over ranks. ``return_outputs`` (one process):
    also ``preds`` int64 (N,) and ``probs`` float32 (N, C) softmax probabilities, on the CPU.
    """
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    n, preds, probs = 0, [], []
    for x, y in batches:
        with autocast(device, precision):
            logits = model(x)
            if tta_flip:
                logits = 0.5 * (logits.float() + model(x.flip(-1)).float())
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        p = logits.argmax(1)
        correct += (p == y).sum()
        n += len(y)
        if return_outputs:
            preds.append(p)
            probs.append(F.softmax(logits, 1))
    sums = (loss_sum.item(), correct.item(), n)
    if world is not None and world.distributed:
        sums = distributed.all_reduce_sums(*sums, device=device)
    out = {"loss": sums[0] / max(sums[2], 1), "acc": sums[1] / max(sums[2], 1), "n": int(sums[2])}
    if return_outputs:
        out["preds"] = torch.cat(preds).cpu()
        out["probs"] = torch.cat(probs).cpu()
    return out


class Feed(NamedTuple):
    """What the loop trains through (:func:`resnet_cli.engine.distribute`): ``module`` (the model,
    maybe DDP-wrapped/compiled), ``train`` (``epoch(epoch, step)`` yields float (N, 3, H, W) images
    and int64 (N,) labels on the device) and ``test`` (an iterable of the same)."""

    module: nn.Module
    train: Any
    test: Any


def fit(state: RunState, feed: Feed, records: Records, stop: Stop) -> None:
    """Train ``state.model`` from ``state.epoch``/``state.step`` to ``trainer.epochs``, appending to
    ``state.history`` and ``state.step_lrs`` and updating ``state.ema`` after each step; after each
    epoch: test evaluation (model and EMA; the last keeps its outputs in ``state.last_eval``),
    history row, log line, tracker, metrics.json/history.csv and, every ``trainer.checkpoint_every``
    epochs and after the last, the checkpoint.

    Raises:
        Diverged: a non-finite training or test loss (the last good checkpoint is kept).
        Interrupted: ``stop.signal`` was set (SIGINT/SIGTERM); a resumable checkpoint was written.
        OutputError: a full disk; the previous checkpoint and the finished epochs' records are kept.
    """
    t, device, optimizer, scheduler = records.config.trainer, records.device, state.optimizer, state.scheduler
    logger, seconds_of = records.logger, records.timings.seconds
    epochs, spe = t.epochs, len(feed.train)
    sync_every = 1 if device.type == "cpu" else t.log_every
    smoothing, tta_flip = t.label_smoothing, t.tta_flip  # smoothing: the training loss only; test loss stays plain
    with _progress_bar(records.console) as progress:
        for epoch in range(state.epoch, epochs):
            first = epoch == state.epoch
            p = state.partial if first else empty_partial()
            step = state.step if first else 0
            loss_sum = torch.tensor(p["loss_sum"], device=device, dtype=torch.float64)
            correct = torch.tensor(p["correct"], device=device, dtype=torch.int64)
            count = p["count"]
            task = progress.add_task("", total=spe, completed=step, epoch=f"{epoch + 1}/{epochs}", loss="-",
                                     acc="-", lr="-")
            state.model.train()
            t0 = time.perf_counter()
            for x, y in feed.train.epoch(epoch, step):
                if t.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast(device, t.precision):
                    logits = feed.module(x)
                    loss = F.cross_entropy(logits.float(), y, label_smoothing=smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if state.ema is not None:
                    state.ema.update_parameters(state.model)
                state.step_lrs.append(scheduler.get_last_lr()[0])
                logger.log_step(len(state.step_lrs), state.step_lrs[-1], optimizer.param_groups[0].get("momentum"))
                scheduler.step()
                loss_sum += loss.detach().double() * len(y)
                correct += (logits.detach().argmax(1) == y).sum()
                count += len(y)
                step += 1
                progress.update(task, advance=1)
                signal_name = stop.signal
                if step % sync_every == 0 or step == spe:  # every step on the CPU; log_every and the last on CUDA
                    loss_value, signal_name = _agree(records, loss.detach(), stop.signal)
                    if not math.isfinite(loss_value):
                        _diverged(state, records, epoch, step)
                    progress.update(task, loss=f"{loss_sum.item() / count:.3f}",
                                    acc=f"{100 * correct.item() / count:.1f}%", lr=f"{state.step_lrs[-1]:.4g}")
                elif records.world.distributed:
                    signal_name = None  # ranks agree to stop only at sync points (_agree)
                if signal_name and step < spe:
                    seconds_of["train"] += time.perf_counter() - t0
                    _interrupted(state, records, epoch, step, {
                        "loss_sum": loss_sum.item(), "correct": int(correct.item()), "count": count,
                        "seconds": p["seconds"] + time.perf_counter() - t0}, signal_name)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = p["seconds"] + time.perf_counter() - t0
            seconds_of["train"] += time.perf_counter() - t0
            _memory_stats(state, device, epoch)
            progress.remove_task(task)
            sums = (loss_sum.item(), correct.item(), count)
            if records.world.distributed:  # sums over ranks; every rank evaluates rank 0's BN statistics
                sums = distributed.all_reduce_sums(*sums, device=device)
                distributed.broadcast_buffers(state.model)
                if state.ema is not None:  # each rank's EMA averaged its own statistics: one EMA is evaluated and saved
                    distributed.distribute_bn(state.ema)
            last = epoch + 1 == epochs
            ev = ema_ev = {"loss": None, "acc": None}
            if last or (epoch + 1) % t.eval_every == 0:
                with records.timings.phase("eval"):  # the last also feeds the diagnostics (one process)
                    keep = last and not records.world.distributed
                    ev = evaluate_batches(state.model, feed.test, device, t.precision, return_outputs=keep,
                                          tta_flip=tta_flip, world=records.world)
                    state.last_eval = ev if keep else None
                    ema_ev = evaluate_batches(state.ema.module, feed.test, device, t.precision,
                                              tta_flip=tta_flip, world=records.world) if state.ema is not None else ev
                if not math.isfinite(ev["loss"]):  # e.g. weights overflowed in the last step: no checkpoint
                    _diverged(state, records, epoch, step, "test loss")
            row = {"epoch": epoch + 1, "lr": state.step_lrs[-1], "train_loss": sums[0] / sums[2],
                   "train_acc": sums[1] / sums[2], "test_loss": ev["loss"], "test_acc": ev["acc"],
                   "seconds": round(seconds, 3), "images_per_s": round(sums[2] / max(seconds, 1e-9), 1)}
            if state.ema is not None:
                row.update(ema_test_loss=ema_ev["loss"], ema_test_acc=ema_ev["acc"])
            state.history.append(row)
            logger.log_epoch(row)
            tested = (f"test_loss {row['test_loss']:.4f}  test_acc {100 * row['test_acc']:5.2f}%"
                      + (f"  ema_test_acc {100 * row['ema_test_acc']:5.2f}%" if state.ema is not None else "")
                      if ev["acc"] is not None else "(test set not evaluated: trainer.eval_every)")
            log.info("epoch %2d/%d  lr %.4g  train_loss %.4f  train_acc %5.2f%%  %s  %.1fs  %.0f images/s", epoch + 1,
                     epochs, row["lr"], row["train_loss"], 100 * row["train_acc"], tested, seconds, row["images_per_s"])
            state.epoch, state.step, state.partial = epoch + 1, 0, empty_partial()
            records.write(state)  # first the small records: a checkpoint that does not fit the disk loses no epoch
            if last or (epoch + 1) % t.checkpoint_every == 0:
                records.checkpoint(state)
            signal_name = _agree(records, 0.0, stop.signal)[1]
            if signal_name and epoch + 1 < epochs:
                _interrupted(state, records, epoch + 1, 0, None, signal_name)


@contextmanager
def stop_signals() -> Iterator[Stop]:
    """Turn the first SIGINT/SIGTERM/SIGHUP into ``stop.signal`` (checked after each step); a second SIGINT,
    or any while ``stop.immediate``, raises :class:`StopRequest` at once (sent again if Python drops it
    inside a ``__del__`` or weakref callback). Main thread only."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.immediate or (stop.signal is not None and signum == signal.SIGINT):
            raise StopRequest(signal.Signals(signum).name)
        stop.signal = signal.Signals(signum).name
        log.warning("%s received: stopping after this step and writing a checkpoint", stop.signal)

    def unraisable(info) -> None:
        # a StopRequest raised while Python ran a __del__ or weakref callback is printed and dropped
        # ("Exception ignored in ..."): send the signal again, so the stop still happens at once
        if isinstance(info.exc_value, StopRequest):
            signum = signal.Signals[info.exc_value.signame.split()[0]]
            threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
            return
        previous_hook(info)

    hangup = (signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()  # a closed terminal: stop as SIGTERM does
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM, *hangup)}
    previous_hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield stop
    finally:
        sys.unraisablehook = previous_hook
        for s, h in old.items():
            signal.signal(s, h)


def _progress_bar(console: Console) -> Progress:
    return Progress(TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]}  acc {task.fields[acc]}  lr {task.fields[lr]}"),
                    TimeElapsedColumn(), console=console, transient=True)


def _memory_stats(state: RunState, device: torch.device, epoch: int) -> None:
    """CUDA: allocated and peak MiB after each epoch."""
    if device.type == "cuda":
        state.cuda_memory.append({"epoch": epoch + 1,
                                  "allocated_mib": round(torch.cuda.memory_allocated(device) / 2**20, 1),
                                  "peak_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)})


def _agree(records: Records, loss: torch.Tensor | float, signal_name: str | None) -> tuple[float, str | None]:
    """This step's loss and the stop signal, identical on every rank (a host sync): under torchrun
    the loss averaged over ranks and a signal if any rank got one, so all ranks stop at the same step."""
    world = records.world
    if not world.distributed:
        return float(loss), signal_name
    total, stopping = distributed.all_reduce_sums(loss, 1.0 if signal_name else 0.0, device=records.device)
    if stopping and not signal_name:
        signal_name = "SIGTERM (on another rank)"
    return total / world.world_size, signal_name


def _diverged(state: RunState, records: Records, epoch: int, step: int, what: str = "training loss") -> None:
    """Record status diverged (metrics.json ``diverged_at``) and raise :class:`Diverged`."""
    state.status = "diverged"
    records.write(state, diverged_at={"epoch": epoch + 1, "step": step, "loss": what.split()[0]})
    ckpt, max_lr = records.checkpoint_path, state.lr.max_lr
    if ckpt.is_file() and records.checkpointed is not None:
        kept = f"the last good checkpoint ({records.checkpointed}) is kept: {ckpt}"
    elif records.config.resume:  # a resumed run: its own folder has no checkpoint yet
        kept = f"no checkpoint was written in this run folder (it diverged in epoch {epoch + 1})"
    else:
        kept = f"no checkpoint was written before it diverged (in epoch {epoch + 1})"
    again = "start a new run (without resume=) with a lower" if records.config.resume else "lower"
    raise Diverged(f"{what} became non-finite at epoch {epoch + 1} step {step} (max_lr={max_lr:.4g}); "
                   f"{kept}; {again} scheduler.max_lr (e.g. scheduler.max_lr={max_lr / 10:.3g} or find)")


def _interrupted(state: RunState, records: Records, epoch: int, step: int, partial: dict | None,
                 signame: str) -> None:
    """Checkpoint at ``epoch``/``step`` with the epoch's ``partial`` sums, record status interrupted,
    raise :class:`Interrupted`."""
    state.status = "interrupted"
    if partial and records.world.distributed:  # the checkpoint holds the epoch's global sums
        partial = dict(partial)
        partial["loss_sum"], correct, count = distributed.all_reduce_sums(
            partial["loss_sum"], partial["correct"], partial["count"], device=records.device)
        partial["correct"], partial["count"] = int(correct), int(count)
    state.epoch, state.step, state.partial = epoch, step, partial or empty_partial()
    if state.ema is not None and records.world.distributed:  # the saved EMA: every rank's statistics
        distributed.distribute_bn(state.ema)
    ckpt = records.checkpoint(state)
    records.write(state, interrupted_at={"epoch": epoch + 1, "step": step, "signal": signame})
    raise Interrupted(f"{signame}: stopped at {position(epoch, step)}; continue with resnet-train "
                      f"resume={ckpt} (the resumed run writes a new run folder; this one keeps status "
                      "interrupted)")
