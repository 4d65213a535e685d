"""The Python API: the ``resnet-train`` recipe from a notebook or a script, on the CLI's code path.

Every function here composes the same config tree (:func:`resnet_cli.cli.config_dir`) with the
same typed schema (:func:`resnet_cli.config.register_configs`) through Hydra's compose API,
checks it with the same :func:`resnet_cli.config.validate`, and trains with the same
:func:`resnet_cli.engine.run` that ``resnet-train`` calls, so the same overrides and seed give the
same run folder contents and the same metrics. Example::

    import resnet_cli

    cfg = resnet_cli.compose(["data=image_folder", "data.root=../shared/data/cifar10-jpeg",
                              "trainer.epochs=2", "scheduler.max_epoch=1"])
    lr = resnet_cli.find_lr(cfg)          # LRFinderOutput(result, figure)
    run = resnet_cli.train(cfg)           # RunResult(metrics, run_dir, model, checkpoint)
    ev = resnet_cli.evaluate(run.checkpoint)
    ev.plot_misclassified(); ev.plot_gradcam(count=4)

Accuracies are fractions 0-1 and losses mean cross-entropy (nats per image), as in metrics.json.
Bad input raises :class:`resnet_cli.errors.UserError` subclasses (``ConfigError``,
``DataError``, ``CheckpointError``) with the same one-line messages the CLI prints.
"""

from __future__ import annotations

import copy
import datetime as _dt
import logging
import sys
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple, Sequence

from omegaconf import DictConfig, OmegaConf

from .errors import CheckpointError, ConfigError, UserError

if TYPE_CHECKING:  # pragma: no cover - typing only; keeps `import resnet_cli` light
    import numpy as np
    import torch
    from matplotlib.figure import Figure
    from torch import nn

    from .data import DataBundle
    from .engine import RunResult
    from .lr_finder import LRFindResult

log = logging.getLogger("resnet_cli")

LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
"""Hydra's default ``job_logging`` format, used for the API's ``train.log``."""

DEFAULT_OUTPUT_ROOT = Path("outputs") / "api"
"""Where :func:`train` puts run folders by default (relative to the working directory, like
the CLI's ``outputs/``): ``outputs/api/<YYYY-MM-DD>/<HH-MM-SS>``."""


# -- config ---------------------------------------------------------------------------------

def _compose(overrides: Sequence[str], config_name: str) -> DictConfig:
    """Hydra compose of ``config_name`` with ``overrides``, returning the hydra node too."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from hydra.initialize import get_gh_backup, restore_gh_from_backup
    from omegaconf.errors import OmegaConfBaseException

    from .cli import config_dir
    from .config import register_configs

    if isinstance(overrides, (str, bytes)):
        raise TypeError(f"overrides must be a list of strings such as ['trainer.epochs=2'], not {overrides!r}")
    overrides = [str(o) for o in overrides]
    register_configs()
    # A Hydra app (or an earlier compose) may hold the global Hydra state: set it aside and put
    # it back afterwards, so compose() can be called any number of times in one process.
    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3", job_name=config_name):
            return hydra_compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"cannot compose config {config_name!r} with overrides {overrides}: {_explain(e)}") from e
    finally:
        restore_gh_from_backup(backup)


def _explain(e: BaseException) -> str:
    """One line from a Hydra/OmegaConf error and its causes (without the search-path dump)."""
    parts: list[str] = []
    err: BaseException | None = e
    while err is not None and len(parts) < 3:
        text = " ".join(str(err).split("Config search path")[0].split())
        if text and text not in parts:
            parts.append(text)
        err = err.__cause__
    return "; ".join(parts) or type(e).__name__


def _strip_hydra(cfg: DictConfig) -> DictConfig:
    from omegaconf import open_dict

    if "hydra" in cfg:
        with open_dict(cfg):
            del cfg["hydra"]
    return cfg


def compose(overrides: Sequence[str] = (), config_name: str = "train", *, validate: bool = True) -> DictConfig:
    """Compose the training config exactly as ``resnet-train <overrides>`` does.

    Args:
        overrides: Hydra command-line overrides, e.g. ``["data=image_folder",
            "data.root=/data/cifar10-jpeg", "trainer.epochs=2"]`` (config groups, dotted keys,
            ``+key=value``; ``hydra.*`` overrides only affect the hydra node, which is dropped).
        config_name: the primary config (``train``).
        validate: also run :func:`resnet_cli.config.validate` (ranges and cross-key checks that
            the CLI applies before loading data). Pass False to edit the config before training;
            :func:`train` validates again in any case.

    Returns:
        The composed config (struct mode: unknown keys are rejected), without the ``hydra`` node.
        Can be called repeatedly in one process, also inside a running Hydra app.

    Raises:
        ConfigError: an override that does not parse, an unknown key or group option, a value of
            the wrong type (schema in :mod:`resnet_cli.config`), or a failed range check.
        TypeError: ``overrides`` given as one string instead of a list.
    """
    cfg = _strip_hydra(_compose(overrides, config_name))
    if validate:
        from .config import validate as validate_config

        validate_config(cfg)
    return cfg


def _as_config(cfg_or_overrides: Any) -> tuple[DictConfig, list[str] | None]:
    """(config, overrides or None) from a composed config or a list of overrides."""
    if isinstance(cfg_or_overrides, DictConfig):
        return copy.deepcopy(cfg_or_overrides), None
    if cfg_or_overrides is None:
        cfg_or_overrides = []
    if isinstance(cfg_or_overrides, (str, bytes)) or not isinstance(cfg_or_overrides, Sequence):
        raise TypeError(
            "pass a config from resnet_cli.compose(...) or a list of overrides such as "
            f"['trainer.epochs=2'], not {type(cfg_or_overrides).__name__} {cfg_or_overrides!r}"
        )
    overrides = [str(o) for o in cfg_or_overrides]
    return compose(overrides, validate=False), overrides


# -- run folder and logging -----------------------------------------------------------------

def default_output_dir(root: str | Path = DEFAULT_OUTPUT_ROOT, now: _dt.datetime | None = None) -> Path:
    """``<root>/<YYYY-MM-DD>/<HH-MM-SS>`` (absolute), like the CLI's ``outputs/<date>/<time>``;
    ``-2``, ``-3``... is appended if that folder already exists."""
    now = now or _dt.datetime.now()
    base = (Path(root) / now.strftime("%Y-%m-%d") / now.strftime("%H-%M-%S")).resolve()
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


def _has_stream_handler(logger: logging.Logger) -> bool:
    while logger is not None:
        if any(type(h) is logging.StreamHandler for h in logger.handlers):
            return True
        if not logger.propagate:
            return False
        logger = logger.parent
    return False


@contextmanager
def job_logging(log_file: str | Path | None, console: bool = True) -> Iterator[None]:
    """What Hydra's ``job_logging`` gives a CLI run, for the duration of an API call.

    The ``resnet_cli`` loggers log at INFO (unless set lower already); with ``log_file``, a
    ``logging.FileHandler`` in Hydra's format (:data:`LOG_FORMAT`) is attached to the root
    logger, so the file has what the CLI's ``train.log`` has; with ``console`` and no stream
    handler configured yet, the messages are also printed to stdout (a notebook cell's output).
    Handlers, levels and warning filters are restored on exit.
    """
    root, pkg = logging.getLogger(), logging.getLogger("resnet_cli")
    added: list[logging.Handler] = []
    old_level = pkg.level
    if pkg.getEffectiveLevel() > logging.INFO:
        pkg.setLevel(logging.INFO)
    quiet = warnings.catch_warnings()
    quiet.__enter__()
    # rich's live progress bar needs ipywidgets inside Jupyter; without it rich only warns and
    # draws nothing, and the per-epoch log lines below say the same.
    warnings.filterwarnings("ignore", message='install "ipywidgets"')
    try:
        if log_file is not None:
            Path(log_file).parent.mkdir(parents=True, exist_ok=True)
            fh = logging.FileHandler(log_file, encoding="utf-8")
            fh.setFormatter(logging.Formatter(LOG_FORMAT))
            added.append(fh)
        if console and not _has_stream_handler(pkg):
            sh = logging.StreamHandler(sys.stdout)
            sh.setFormatter(logging.Formatter("%(message)s"))
            added.append(sh)
        for h in added:
            root.addHandler(h)
        yield
    finally:
        for h in added:
            root.removeHandler(h)
            h.close()
        pkg.setLevel(old_level)
        quiet.__exit__(None, None, None)


def _save_hydra_files(run_dir: Path, cfg: DictConfig, overrides: list[str] | None) -> None:
    """``.hydra/config.yaml`` and ``.hydra/overrides.yaml``, as Hydra writes them for a CLI run."""
    d = run_dir / ".hydra"
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.yaml").write_text(OmegaConf.to_yaml(cfg), encoding="utf-8")
    (d / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides or []))), encoding="utf-8")


# -- train / find_lr / data -----------------------------------------------------------------

def train(cfg_or_overrides: Any = (), output_dir: str | Path | None = None, *, verbose: bool = True) -> "RunResult":
    """Run the whole recipe, exactly as ``resnet-train`` does, into ``output_dir``.

    Args:
        cfg_or_overrides: a config from :func:`compose` (copied, not modified) or a list of
            overrides (composed with :func:`compose`).
        output_dir: the run folder; default :func:`default_output_dir`
            (``outputs/api/<date>/<time>`` under the working directory).
        verbose: also print the log lines to stdout (a notebook cell's output), unless logging
            already has a stream handler. The engine's progress bar goes to stderr regardless
            (in Jupyter only with ipywidgets installed).

    Returns:
        :class:`resnet_cli.engine.RunResult`: ``metrics`` (the dict in metrics.json: test_acc,
        test_loss, train_acc, train_loss, max_lr, min_lr, history per epoch; accuracies are
        fractions 0-1), ``run_dir``, ``model`` (trained, eval mode, on the training device),
        ``checkpoint`` (``run_dir/checkpoints/last.pt``) and ``data`` (the DataBundle used).

    The run folder is the CLI's: metrics.json, history.csv, checkpoints/last.pt, plots/*.png,
    plus ``train.log`` (what Hydra's job logging writes for the CLI) and ``.hydra/config.yaml``
    / ``.hydra/overrides.yaml``.

    Raises:
        ConfigError, DataError, CheckpointError: bad input, before any training (metrics.json
            then says ``status: failed``, as for the CLI).
        Diverged, Interrupted (:mod:`resnet_cli.engine`): non-finite loss; SIGINT/SIGTERM (a
            notebook's "interrupt kernel") after which ``resume=<checkpoint>`` continues.
    """
    from .checkpoint import write_json
    from .engine import run

    cfg, overrides = _as_config(cfg_or_overrides)
    run_dir = Path(output_dir).expanduser().resolve() if output_dir is not None else default_output_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    job_name = "train"
    _save_hydra_files(run_dir, cfg, overrides)
    with job_logging(run_dir / f"{job_name}.log", console=verbose):
        try:
            return run(cfg, run_dir)
        except UserError as e:
            log.error("%s", e)
            if not (run_dir / "metrics.json").exists():
                write_json(run_dir / "metrics.json", {"status": "failed", "error": str(e)})
            raise


class LRFinderOutput(NamedTuple):
    """What :func:`find_lr` returns; unpacks as ``result, figure = resnet_cli.find_lr(cfg)``."""

    result: "LRFindResult"
    """The range-test curve (``lrs``, smoothed ``losses``) and the ``max_lr``/``min_lr`` that
    training would use with ``scheduler.max_lr=find scheduler.min_lr=find``."""
    figure: "Figure"
    """The LR finder plot (the CLI's ``plots/lr_finder.png``)."""


def find_lr(cfg_or_overrides: Any = (), output_dir: str | Path | None = None, *,
            verbose: bool = True) -> LRFinderOutput:
    """Run the LR range test of ``cfg`` alone, with the training run's own set-up.

    The data, model, augmented batches, optimizer and seed are prepared by the same
    :meth:`resnet_cli.engine.Trainer.setup` a training run uses, with ``scheduler.max_lr`` and
    ``scheduler.min_lr`` set to ``find`` (and ``resume`` to null), so the result equals the LRs
    ``resnet-train`` with those settings picks (``lr_finder.*`` settings apply; rule in
    :mod:`resnet_cli.lr_finder`). To train with them without repeating the test, set
    ``cfg.scheduler.max_lr = out.result.max_lr`` and ``cfg.scheduler.min_lr = out.result.min_lr``.

    Args:
        cfg_or_overrides: a config from :func:`compose` or a list of overrides.
        output_dir: where the set-up's files go (plots/lr_finder.png and the dataset
            previews); default a temporary folder that is deleted afterwards.
        verbose: print the log lines.

    Returns:
        :class:`LRFinderOutput` ``(result, figure)``; learning rates in the optimizer's units.

    Raises:
        ConfigError, DataError: bad config or data.
        ValueError: the test produced fewer than 3 finite losses (raise ``lr_finder.num_iter``).
    """
    from . import plots
    from .engine import Trainer

    cfg, _ = _as_config(cfg_or_overrides)
    OmegaConf.update(cfg, "scheduler.max_lr", "find", merge=False)
    OmegaConf.update(cfg, "scheduler.min_lr", "find", merge=False)
    cfg.resume = None
    if "logger" in cfg:  # no TensorBoard event files for a range test alone
        cfg.logger = None
    with tempfile.TemporaryDirectory(prefix="resnet-cli-lr-") as tmp:
        run_dir = Path(output_dir).expanduser().resolve() if output_dir is not None else Path(tmp)
        with job_logging(None, console=verbose):
            trainer = Trainer(cfg, run_dir)
            try:
                trainer.setup()
            finally:
                if getattr(trainer, "logger", None) is not None:
                    trainer.logger.close()
    r = trainer.lr
    return LRFinderOutput(r, plots.plot_lr_finder(r.lrs, r.losses, r.max_lr, r.min_lr, r.rule, r.accs, r.step_mode or "exp",
                                                    r.smooth_f))


def load_data(cfg_or_overrides: Any = ()) -> "DataBundle":
    """Load the dataset of a config as a training run does (same subsets, same mean/std).

    Returns:
        :class:`resnet_cli.data.DataBundle`: uint8 images (N, H, W, 3), int64 labels (N,),
        class names, per-channel mean/std (fractions 0-1) of the training images used.

    Raises:
        ConfigError, DataError: bad config, missing or unreadable data.
    """
    from .config import validate
    from .data import load_data as _load

    cfg, _ = _as_config(cfg_or_overrides)
    validate(cfg)
    return _load(cfg.data, int(cfg.seed))


# -- checkpoints and evaluation -------------------------------------------------------------

_WEIGHTS = ("model", "optimizer", "scheduler", "torch_rng")


def load_model(checkpoint: str | Path, device: str = "auto") -> tuple["nn.Module", dict[str, Any]]:
    """Rebuild the trained network from a ``checkpoints/last.pt`` alone, as ``resnet-gradcam``
    does (:func:`resnet_cli.gradcam.model_from_checkpoint`: only ``resnet_cli.models`` classes).

    Args:
        checkpoint: path of a checkpoint written by ``resnet-train`` / :func:`train`.
        device: ``auto`` (CUDA if available), ``cpu`` or ``cuda``.

    Returns:
        ``(model, info)``: the network with the trained weights, in eval mode on ``device``, and
        the checkpoint's other entries: ``config`` (the run's resolved config as a dict, absolute
        ``data.root``), ``classes`` (names in label order), ``mean``/``std`` (3 fractions 0-1),
        ``image_size`` (pixels), ``history``, ``step_lrs``, ``epoch``, ``lr`` ...

    Raises:
        CheckpointError: missing, unreadable or foreign checkpoint, a model class outside
            resnet_cli.models, or weights that do not fit.
        ConfigError: an unusable ``device``.
    """
    from .config import resolve_device
    from .gradcam import model_from_checkpoint

    model, ckpt = model_from_checkpoint(checkpoint, resolve_device(device))
    return model, {k: v for k, v in ckpt.items() if k not in _WEIGHTS}


@dataclass
class Evaluation:
    """A model's predictions on a test set (from :func:`evaluate`).

    Attributes:
        loss: mean cross-entropy over the test images (nats per image).
        acc: accuracy, fraction 0-1.
        n: number of test images.
        preds: int64 (N,) predicted class indices (CPU).
        probs: float32 (N, C) softmax probabilities (CPU).
        labels: int64 (N,) true class indices (CPU).
        x: float32 (N, 3, H, W) normalised test images, on the model's device.
        classes: class names in label order.
        mean, std: per-channel normalisation, fractions 0-1.
        model: the evaluated network (eval mode).
        seed: seed of the random misclassified selection (the run's ``seed``).
    """

    loss: float
    acc: float
    n: int
    preds: "torch.Tensor" = field(repr=False)
    probs: "torch.Tensor" = field(repr=False)
    labels: "torch.Tensor" = field(repr=False)
    x: "torch.Tensor" = field(repr=False)
    classes: list[str] = field(repr=False)
    mean: list[float] = field(repr=False)
    std: list[float] = field(repr=False)
    model: "nn.Module" = field(repr=False)
    seed: int = field(default=0, repr=False)

    def images(self, idx: Any = None) -> "np.ndarray":
        """True-colour test images, float32 (k, H, W, 3) in [0, 1] (all, or indices ``idx``)."""
        import torch

        from .explain import denormalize

        x = self.x if idx is None else self.x[torch.as_tensor(idx, dtype=torch.long, device=self.x.device)]
        return denormalize(x, self.mean, self.std)

    def class_accuracy(self) -> dict[str, float | None]:
        """``{class name: accuracy fraction 0-1}`` (None for a class without test images)."""
        from .explain import class_accuracy

        return class_accuracy(self.preds, self.labels, self.classes)

    def confusion_matrix(self) -> "np.ndarray":
        """int64 (C, C) counts, rows = true class, columns = predicted class."""
        from .explain import confusion_matrix

        return confusion_matrix(self.preds, self.labels, len(self.classes))

    def misclassified(self, count: int = 20, order: str = "confident") -> "np.ndarray":
        """Indices int64 (k,) of misclassified test images, selected as the run folder's
        ``plots/misclassified.png`` selects them (:func:`resnet_cli.explain.find_misclassified`:
        most confident first, or ``order="random"`` seeded with :attr:`seed`)."""
        from .explain import find_misclassified

        return find_misclassified(self.preds, self.probs, self.labels, count=count, order=order, seed=self.seed)

    def plot_misclassified(self, count: int = 20, order: str = "confident", ncols: int = 5) -> "Figure":
        """Grid of misclassified images titled ``true -> predicted (p=...)``: one axes per image
        (one "no misclassified images" axes if there are none)."""
        from .explain import plot_misclassified

        idx = self.misclassified(count, order)
        p = self.preds.numpy()
        conf = self.probs.numpy()[idx, p[idx]]
        return plot_misclassified(self.images(idx), self.labels.numpy()[idx], p[idx], conf, self.classes, ncols=ncols)

    def plot_confusion_matrix(self) -> "Figure":
        """The confusion matrix figure (colours: row fractions; cells: counts)."""
        from .explain import plot_confusion_matrix

        return plot_confusion_matrix(self.confusion_matrix(), self.classes)

    def gradcam(self, idx: Any, layers: Sequence[str] | None = None, target: str = "both",
                method: str = "gradcam") -> dict[str, "np.ndarray"]:
        """Heat maps for test images ``idx``: ``{"<layer> | <predicted|true>": float32 (k, H, W)
        in [0, 1]}``, one entry per target layer (None = the model's defaults, see
        :func:`resnet_cli.explain.default_target_layers`) and explained class (``target``:
        predicted, true or both), computed with :func:`resnet_cli.explain.gradcam_maps`.

        Raises:
            ConfigError: an unknown layer, ``method`` or ``target``.
        """
        import numpy as np
        import torch

        from .explain import TARGETS, gradcam_maps, resolve_target_layers

        if target not in TARGETS:
            raise ConfigError(f"target={target!r} is not allowed: one of {', '.join(TARGETS)}")
        idx = np.asarray(idx, dtype=np.int64)
        names, modules = resolve_target_layers(self.model, layers, self.x.shape[-1])
        xs = self.x[torch.as_tensor(idx, device=self.x.device)]
        kinds = ["predicted", "true"] if target == "both" else [target]
        cams: dict[str, np.ndarray] = {}
        for name, module in zip(names, modules):
            for kind in kinds:
                cls = (self.preds if kind == "predicted" else self.labels).numpy()[idx]
                cams[f"{name} | {kind}"] = gradcam_maps(self.model, xs, [module], cls.tolist(), method)
        return cams

    def plot_gradcam(self, count: int = 8, idx: Any = None, layers: Sequence[str] | None = None,
                     target: str = "both", method: str = "gradcam", order: str = "confident") -> "Figure":
        """Grad-CAM grid: one row per image (default the first ``count`` misclassified ones, as
        :meth:`misclassified` picks them; or the test indices ``idx``), the original then one
        overlay per (layer, explained class) from :meth:`gradcam`. ``rows x (1 + layers x
        targets)`` axes."""
        import numpy as np

        from .explain import plot_gradcam_grid

        idx = self.misclassified(count, order) if idx is None else np.asarray(idx, dtype=np.int64)
        cams = self.gradcam(idx, layers, target, method)
        p, t, pr = self.preds.numpy(), self.labels.numpy(), self.probs.numpy()
        titles = [f"{self.classes[t[i]]} -> {self.classes[p[i]]} (p={pr[i, p[i]]:.2f})" for i in idx]
        return plot_gradcam_grid(self.images(idx), cams, titles)


def evaluate(source: Any, data: Any = None, *, device: str = "auto", batch_size: int | None = None,
             precision: str | None = None) -> Evaluation:
    """Evaluate a trained model on a test set, with the evaluation the training run uses
    (:func:`resnet_cli.engine.evaluate` over :class:`resnet_cli.augment.TestBatches`).

    Args:
        source: one of
            * a checkpoint path (``<run>/checkpoints/last.pt``): model, class names and
              normalisation are rebuilt from the checkpoint alone (:func:`load_model`); by
              default the test split is re-read as the run read it (its absolute ``data.root``,
              ``data.test_subset`` and ``seed``; training images are not decoded), so the result
              reproduces the run's final ``test_acc``/``test_loss``;
            * a :class:`~resnet_cli.engine.RunResult` from :func:`train` (its model and data);
            * an ``nn.Module`` (then ``data`` is required, and its training images' mean/std
              normalise the test images).
        data: other test data: a :class:`~resnet_cli.data.DataBundle` (its test split), or a
            config from :func:`compose` / a list of overrides (e.g. ``["data=image_folder",
            "data.root=/elsewhere/cifar10-jpeg", "data.test_subset=1000"]``) whose test split is
            read. Class names must match the model's.
        device: ``auto``, ``cpu`` or ``cuda`` (checkpoints and bare modules; a RunResult's
            model stays where it is).
        batch_size: images per forward pass (default: the run's ``data.batch_size``, else 512).
        precision: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``bf16`` or ``fp32``; default
            the run's ``trainer.precision``, else ``auto``.

    Returns:
        :class:`Evaluation`: loss (nats/image), acc (fraction 0-1), predictions, probabilities,
        and the misclassified / confusion-matrix / Grad-CAM figures.

    Raises:
        CheckpointError, DataError, ConfigError: unusable checkpoint, data, options, or class
            names that differ between model and data.
        TypeError: an unsupported ``source``/``data`` type, or a bare module without ``data``.
    """
    import torch
    from torch import nn

    from .augment import TestBatches
    from .config import resolve_device
    from .data import DataBundle
    from .data import load_data as _load
    from .engine import RunResult
    from .engine import evaluate as _evaluate
    from .gradcam import load_test_split

    run_cfg: Any = None  # the run's config (dict or DictConfig): batch size, precision, seed
    norm: tuple | None = None  # (mean, std, classes) the model was trained with
    if isinstance(source, RunResult):
        from .checkpoint import load_checkpoint

        info = load_checkpoint(source.checkpoint)
        model, run_cfg = source.model, info["config"]
        norm = (info["mean"], info["std"], info["classes"])
        data = source.data if data is None else data
    elif isinstance(source, (str, Path)):
        model, info = load_model(source, device)
        run_cfg, norm = info["config"], (info["mean"], info["std"], info["classes"])
    elif isinstance(source, nn.Module):
        if data is None:
            raise TypeError("evaluate(model, data): a bare model needs data (a DataBundle, a config or overrides)")
        model = source.to(resolve_device(device))
    else:
        raise TypeError(f"evaluate() takes a checkpoint path, a RunResult or an nn.Module, not {type(source).__name__}")

    if data is None:
        images, labels, data_classes = load_test_split(run_cfg["data"], int(run_cfg["seed"]))
    elif isinstance(data, DataBundle):
        images, labels, data_classes = data.test_images, data.test_labels, list(data.classes)
        norm = norm or (data.mean, data.std, list(data.classes))
    else:
        cfg, _ = _as_config(data)
        if norm is None:  # the mean/std of the training images, as a run computes them
            bundle = _load(cfg.data, int(cfg.seed))
            images, labels, data_classes = bundle.test_images, bundle.test_labels, list(bundle.classes)
            norm = (bundle.mean, bundle.std, list(bundle.classes))
        else:
            images, labels, data_classes = load_test_split(OmegaConf.to_container(cfg.data, resolve=True), int(cfg.seed))
        run_cfg = run_cfg if run_cfg is not None else cfg
    mean, std, classes = norm
    if list(data_classes) != list(classes):
        raise ConfigError(f"the test data's classes {list(data_classes)} differ from the model's {list(classes)}")

    if batch_size is None:
        batch_size = int(run_cfg["data"]["batch_size"]) if run_cfg is not None else 512
    if precision is None:
        precision = str(run_cfg["trainer"]["precision"]) if run_cfg is not None else "auto"
    if precision not in ("auto", "bf16", "fp32"):
        raise ConfigError(f"precision={precision!r} is not allowed: one of auto, bf16, fp32")
    dev = next(model.parameters()).device
    batches = TestBatches(images, labels, mean, std, batch_size, dev)
    out = _evaluate(model, batches, dev, precision, return_outputs=True)
    return Evaluation(
        loss=float(out["loss"]), acc=float(out["acc"]), n=int(out["n"]), preds=out["preds"],
        probs=out["probs"], labels=torch.as_tensor(labels, dtype=torch.int64), x=batches.x,
        classes=[str(c) for c in classes], mean=[float(m) for m in mean], std=[float(s) for s in std],
        model=model, seed=int(run_cfg["seed"]) if run_cfg is not None else 0,
    )


# -- figures from a run ---------------------------------------------------------------------

def _checkpoint_of(run: Any) -> Path:
    from .engine import RunResult

    if isinstance(run, RunResult):
        return Path(run.checkpoint)
    path = Path(run)
    return path / "checkpoints" / "last.pt" if path.is_dir() else path


def plot_one_cycle(run: Any) -> "Figure":
    """The One Cycle LR a run applied at every optimizer step (the run folder's
    ``plots/lr_schedule.png``), read from its checkpoint.

    Args:
        run: a :class:`~resnet_cli.engine.RunResult`, a run folder or a checkpoint path.

    Raises:
        CheckpointError: no usable checkpoint, or one without completed epochs.
    """
    from . import plots
    from .checkpoint import load_checkpoint

    path = _checkpoint_of(run)
    ckpt = load_checkpoint(path)
    epochs_done, lrs = int(ckpt.get("epoch") or 0), list(ckpt.get("step_lrs") or [])
    if epochs_done < 1 or not lrs:
        raise CheckpointError(f"{path} has no completed epoch, so no LR schedule to plot")
    steps_per_epoch = (len(lrs) - int(ckpt.get("step") or 0)) // epochs_done  # steps = epochs * spe + step
    return plots.plot_lr_schedule(lrs, steps_per_epoch, int(ckpt["config"]["scheduler"]["max_epoch"]))


def plot_history(run: Any) -> "Figure":
    """Train/test loss and accuracy per epoch (the run folder's ``plots/curves.png``) from a
    :class:`~resnet_cli.engine.RunResult`, a metrics dict or a history list."""
    from . import plots
    from .engine import RunResult

    if isinstance(run, RunResult):
        run = run.metrics
    history = run["history"] if isinstance(run, dict) else run
    return plots.plot_curves(history)
