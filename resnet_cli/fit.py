"""The training loop: forward, backward, optimizer step, One Cycle step, one epoch after another,
with a test evaluation, a checkpoint and the records after each epoch.

The step loop keeps loss and accuracy sums on the device; it synchronises with the host only
every ``trainer.log_every`` steps (progress display, the non-finite-loss check and, under
torchrun, the ranks' agreement to stop) on CUDA, and every step on the CPU, where a check costs
nothing (the airbench habit: no per-step host syncs on the GPU). Progress, DDP agreement, stop
signals and memory statistics are the small helpers below the loop.
"""

from __future__ import annotations

import logging
import math
import time
import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn
from torch.nn import functional as F

from . import distributed
from .errors import Diverged, Interrupted, StopRequest
from .precision import autocast
from .run_folder import Run, empty_partial, position

log = logging.getLogger("resnet_cli")


@torch.inference_mode()
def evaluate(model: nn.Module, batches, device: torch.device, precision: str = "fp32",
             return_outputs: bool = False, tta_flip: bool = False) -> dict[str, Any]:
    """Mean cross-entropy (nats per image) and accuracy (fraction 0-1) of ``model`` over
    ``batches`` (an iterable of float (N, 3, H, W) images and int64 (N,) labels on ``device``).

    ``tta_flip``: test-time augmentation by horizontal flip, the logits averaged over each image
    and its mirror (airbench94's ``0.5 * (net(x) + net(x.flip(-1)))``); twice the forward passes.

    With ``return_outputs``, also ``preds`` int64 (N,) and ``probs`` float32 (N, C) softmax
    probabilities on the CPU, in the batches' order. Sums stay on the device until the end.
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
    out = {"loss": loss_sum.item() / max(n, 1), "acc": correct.item() / max(n, 1), "n": n}
    if return_outputs:
        out["preds"] = torch.cat(preds).cpu()
        out["probs"] = torch.cat(probs).cpu()
    return out


def fit(run: Run, train_model: nn.Module, train_batches, eval_batches, logger, stop: dict,
        console: Console) -> None:
    """Train ``run.model`` (through ``train_model``: the same module, DDP-wrapped and/or compiled)
    from ``run.epoch``/``run.step`` to ``trainer.epochs``, appending to ``run.history``.

    After each epoch: test evaluation (the last one keeps its outputs in ``run.last_eval``),
    history row, log line, metrics.json/history.csv, checkpoint.

    Raises:
        Diverged: a non-finite training or test loss (the last good checkpoint is kept).
        Interrupted: ``stop["signal"]`` was set (SIGINT/SIGTERM); a resumable checkpoint was written.
        OutputError: a record or checkpoint could not be written (full disk); the previous
            checkpoint and the finished epochs' records are kept.
    """
    cfg, device, optimizer, scheduler = run.cfg, run.device, run.optimizer, run.scheduler
    epochs, spe = cfg.trainer.epochs, len(train_batches)
    sync_every = 1 if device.type == "cpu" else cfg.trainer.log_every
    channels_last = cfg.trainer.channels_last
    smoothing = float(cfg.trainer.get("label_smoothing", 0.0))  # the training loss only; test loss stays plain
    with _progress_bar(console) as progress:
        for epoch in range(run.epoch, epochs):
            first = epoch == run.epoch
            p = run.partial if first else empty_partial()
            step = run.step if first else 0
            loss_sum = torch.tensor(p["loss_sum"], device=device, dtype=torch.float64)
            correct = torch.tensor(p["correct"], device=device, dtype=torch.int64)
            count = p["count"]
            task = progress.add_task("", total=spe, completed=step, epoch=f"{epoch + 1}/{epochs}", loss="-",
                                     acc="-", lr="-")
            run.model.train()
            t0 = time.perf_counter()
            for x, y in train_batches.epoch(epoch, step):
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast(device, cfg.trainer.precision):
                    logits = train_model(x)
                    loss = F.cross_entropy(logits.float(), y, label_smoothing=smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                run.step_lrs.append(scheduler.get_last_lr()[0])
                logger.log_step(len(run.step_lrs), run.step_lrs[-1], optimizer.param_groups[0].get("momentum"))
                scheduler.step()
                loss_sum += loss.detach().double() * len(y)
                correct += (logits.detach().argmax(1) == y).sum()
                count += len(y)
                step += 1
                progress.update(task, advance=1)
                signal_name = stop["signal"]
                if step % sync_every == 0 or step == spe:  # every step on the CPU; log_every and the last on CUDA
                    loss_value, signal_name = _agree(run, loss.detach(), stop["signal"])
                    if not math.isfinite(loss_value):
                        _diverged(run, epoch, step)
                    progress.update(task, loss=f"{loss_sum.item() / count:.3f}",
                                    acc=f"{100 * correct.item() / count:.1f}%", lr=f"{run.step_lrs[-1]:.4g}")
                elif run.world.distributed:
                    signal_name = None  # ranks agree to stop only at sync points (_agree)
                if signal_name and step < spe:
                    run.seconds["train"] += time.perf_counter() - t0
                    _interrupted(run, epoch, step, {"loss_sum": loss_sum.item(), "correct": int(correct.item()),
                                                    "count": count, "seconds": p["seconds"] + time.perf_counter() - t0},
                                 signal_name)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = p["seconds"] + time.perf_counter() - t0
            run.seconds["train"] += time.perf_counter() - t0
            _memory_stats(run, epoch)
            progress.remove_task(task)
            sums = (loss_sum.item(), correct.item(), count)
            if run.world.distributed:  # sums over ranks; every rank evaluates rank 0's BN statistics
                sums = distributed.all_reduce_sums(*sums, device=device)
                distributed.broadcast_buffers(run.model)
            last = epoch + 1 == epochs
            ev = {"loss": None, "acc": None}
            if last or (epoch + 1) % cfg.trainer.eval_every == 0:
                t_eval = time.perf_counter()
                ev = _evaluate(run, eval_batches, outputs=last)  # the last also feeds the diagnostics
                run.seconds["eval"] += time.perf_counter() - t_eval
                if not math.isfinite(ev["loss"]):  # e.g. weights overflowed in the last step: no checkpoint
                    _diverged(run, epoch, step, "test loss")
            row = {"epoch": epoch + 1, "lr": run.step_lrs[-1], "train_loss": sums[0] / sums[2],
                   "train_acc": sums[1] / sums[2], "test_loss": ev["loss"], "test_acc": ev["acc"],
                   "seconds": round(seconds, 3), "images_per_s": round(sums[2] / max(seconds, 1e-9), 1)}
            run.history.append(row)
            logger.log_epoch(row)
            tested = (f"test_loss {row['test_loss']:.4f}  test_acc {100 * row['test_acc']:5.2f}%"
                      if ev["acc"] is not None else "(test set not evaluated: trainer.eval_every)")
            log.info("epoch %2d/%d  lr %.4g  train_loss %.4f  train_acc %5.2f%%  %s  %.1fs  %.0f images/s", epoch + 1,
                     epochs, row["lr"], row["train_loss"], 100 * row["train_acc"], tested, seconds, row["images_per_s"])
            run.epoch, run.step, run.partial = epoch + 1, 0, empty_partial()
            run.write_records()  # first the small records: a checkpoint that does not fit the disk loses no epoch
            run.checkpoint(epoch + 1, 0)
            signal_name = _agree(run, 0.0, stop["signal"])[1]
            if signal_name and epoch + 1 < epochs:
                _interrupted(run, epoch + 1, 0, None, signal_name)


# -- hooks of the loop ---------------------------------------------------------------------

@contextmanager
def stop_signals(immediate: bool = False) -> Iterator[dict]:
    """Turn the first SIGINT/SIGTERM into a flag (``state["signal"]``) checked after each step;
    a second SIGINT interrupts at once. While ``state["immediate"]`` is true (set-up: data
    loading, LR range test, when there is nothing to checkpoint yet) any of them raises
    :class:`StopRequest` at once. Handlers are restored on exit (main thread only)."""
    state: dict[str, Any] = {"signal": None, "immediate": immediate}
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


def _progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  acc {task.fields[acc]}  lr {task.fields[lr]}"),
        TimeElapsedColumn(), console=console, transient=True,
    )


def _memory_stats(run: Run, epoch: int) -> None:
    """CUDA: allocated and peak MiB after each epoch (constant across epochs unless something leaks)."""
    if run.device.type == "cuda":
        run.epoch_memory.append({"epoch": epoch + 1,
                                 "allocated_mib": round(torch.cuda.memory_allocated(run.device) / 2**20, 1),
                                 "peak_mib": round(torch.cuda.max_memory_allocated(run.device) / 2**20, 1)})


def _agree(run: Run, loss: torch.Tensor | float, signal_name: str | None) -> tuple[float, str | None]:
    """This step's loss and the stop signal, identical on every rank (a host sync).

    One process: ``loss.item()`` and the signal as received. Under torchrun: the loss averaged
    over ranks, and a signal if any rank received one (so all ranks stop, or diverge, at the
    same step and no rank is left waiting in a collective).
    """
    if not run.world.distributed:
        return float(loss), signal_name
    total, stopping = distributed.all_reduce_sums(loss, 1.0 if signal_name else 0.0, device=run.device)
    if stopping and not signal_name:
        signal_name = "SIGTERM (on another rank)"
    return total / run.world.world_size, signal_name


def _evaluate(run: Run, eval_batches, outputs: bool) -> dict[str, Any]:
    """Test loss and accuracy of the whole test split; under torchrun each rank evaluates its
    block and the sums are reduced. ``outputs`` (one process only): also keep the predictions
    and probabilities in ``run.last_eval`` for the diagnostics."""
    keep = outputs and not run.world.distributed
    ev = evaluate(run.model, eval_batches, run.device, run.cfg.trainer.precision, return_outputs=keep,
                  tta_flip=bool(run.cfg.trainer.get("tta_flip", False)))
    if not run.world.distributed:
        run.last_eval = ev if keep else None
        return ev
    loss_sum, correct, n = distributed.all_reduce_sums(ev["loss"] * ev["n"], round(ev["acc"] * ev["n"]), ev["n"],
                                                       device=run.device)
    return {"loss": loss_sum / max(n, 1), "acc": correct / max(n, 1), "n": int(n)}


def _diverged(run: Run, epoch: int, step: int, what: str = "training loss") -> None:
    """Record status diverged (metrics.json ``diverged_at``: epoch, step, loss) and raise
    :class:`Diverged`; checkpoints/last.pt, written at the last finite epoch end, is kept."""
    run.status = "diverged"
    run.write_records(diverged_at={"epoch": epoch + 1, "step": step, "loss": what.split()[0]})
    if run.ckpt_path.is_file():
        kept = f"the last good checkpoint (end of epoch {epoch}) is kept: {run.ckpt_path}"
    else:
        kept = "no checkpoint was written (it diverged in the first epoch)"
    raise Diverged(f"{what} became non-finite at epoch {epoch + 1} step {step} (max_lr={run.lr.max_lr:.4g}); "
                   f"{kept}; lower scheduler.max_lr (e.g. scheduler.max_lr={run.lr.max_lr / 10:.3g} or find)")


def _interrupted(run: Run, epoch: int, step: int, partial: dict | None, signame: str) -> None:
    """Write a resumable checkpoint at ``epoch``/``step``, record status interrupted, raise
    :class:`Interrupted`."""
    run.status = "interrupted"
    if partial and run.world.distributed:  # the checkpoint holds the epoch's global sums
        partial = dict(partial)
        partial["loss_sum"], correct, count = distributed.all_reduce_sums(
            partial["loss_sum"], partial["correct"], partial["count"], device=run.device)
        partial["correct"], partial["count"] = int(correct), int(count)
    run.checkpoint(epoch, step, partial)
    run.write_records(interrupted_at={"epoch": epoch + 1, "step": step, "signal": signame})
    raise Interrupted(f"{signame}: stopped at {position(epoch, step)}; continue with resnet-train "
                      f"resume={run.ckpt_path} (the resumed run writes a new run folder; this one keeps status "
                      "interrupted)")
