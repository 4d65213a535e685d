"""The Python API: :func:`train` and :func:`find_lr` run the ``resnet-train`` recipe from a notebook or a
script on the CLI's code path (same composition, ``validate`` and :func:`resnet_cli.engine.run`), so the same
overrides and seed give the same run folder and metrics; bad input raises :class:`resnet_cli.errors.UserError`
subclasses with the CLI's one-line messages. Evaluating a trained model: :func:`evaluate`
(:mod:`resnet_cli.diagnostics.evaluation`).
"""

from __future__ import annotations

import datetime as _dt
import logging
import sys
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple

from omegaconf import DictConfig, OmegaConf

from .cli.composition import as_config
from .errors import ConfigError, UserError

if TYPE_CHECKING:  # pragma: no cover - typing only; keeps `import resnet_cli` light
    from matplotlib.figure import Figure

    from .data import DataBundle
    from .diagnostics.report import Evaluation
    from .core.run_folder import RunResult
    from .core.schedule import LRFindResult

log = logging.getLogger("resnet_cli")

LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
"""Hydra's default ``job_logging`` format, used for the API's ``train.log``."""

DEFAULT_OUTPUT_ROOT = Path("outputs") / "api"
"""Where :func:`train` puts run folders by default (relative to the working directory)."""


# -- run folder and logging -----------------------------------------------------------------

def _clock_dir(root: str | Path, now: _dt.datetime | None = None) -> Path:
    now = now or _dt.datetime.now()
    return (Path(root) / now.strftime("%Y-%m-%d") / now.strftime("%H-%M-%S")).resolve()


def default_output_dir(root: str | Path = DEFAULT_OUTPUT_ROOT, now: _dt.datetime | None = None) -> Path:
    """``<root>/<YYYY-MM-DD>/<HH-MM-SS>`` (absolute), ``-2``, ``-3``... appended if it exists."""
    base = _clock_dir(root, now)
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
    """What Hydra's ``job_logging`` gives a CLI run, for the duration of an API call: ``resnet_cli`` at
    INFO, ``log_file`` in :data:`LOG_FORMAT` and, with ``console`` and no stream handler yet, stdout.
    Handlers, levels and warning filters are restored on exit.
    """
    root, pkg = logging.getLogger(), logging.getLogger("resnet_cli")
    added: list[logging.Handler] = []
    old_level = pkg.level
    if pkg.getEffectiveLevel() > logging.INFO:
        pkg.setLevel(logging.INFO)
    with warnings.catch_warnings():
        # rich's progress bar needs ipywidgets in Jupyter; without it rich only warns (the log lines say the same)
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


def _save_hydra_files(run_dir: Path, cfg: DictConfig, overrides: list[str] | None) -> None:
    """``.hydra/config.yaml`` and ``.hydra/overrides.yaml``, as Hydra writes them."""
    d = run_dir / ".hydra"
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.yaml").write_text(OmegaConf.to_yaml(cfg), encoding="utf-8")
    (d / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides or []))), encoding="utf-8")


# -- train / find_lr / data -----------------------------------------------------------------

def train(cfg_or_overrides: Any = (), output_dir: str | Path | None = None, *, lr: Any = None,
          verbose: bool = True) -> "RunResult":
    """Run the whole recipe as ``resnet-train`` does into ``output_dir`` (default ``outputs/<date>/<time>``,
    created atomically: ``-2``, ``-3``... if taken), the CLI's run folder plus ``train.log`` and ``.hydra/``.

    Args:
        cfg_or_overrides: a config from :func:`resnet_cli.compose` (not modified) or a list of overrides.
        lr: the LRs :func:`find_lr` found (its :class:`LRFinderOutput` or ``.result``), so the range test
            does not run a second time: ``out = find_lr(cfg); train(cfg, lr=out)``. Any object with
            ``max_lr`` and ``min_lr`` (optimizer units) works; they replace ``scheduler.max_lr``/``min_lr``
            in the run's config (so ``.hydra/config.yaml`` reruns it), and a range test's curve is drawn
            into ``plots/lr_finder.png``. None: the config's settings (``find`` runs the range test).
        verbose: also print the log lines to stdout, unless logging already has a stream handler.

    Returns a :class:`resnet_cli.core.run_folder.RunResult`: ``metrics`` (metrics.json; accuracies fractions 0-1),
    ``run_dir``, ``model`` (trained, eval mode), ``checkpoint`` and ``data``. Raises ConfigError, DataError,
    CheckpointError (bad input, before training), Diverged (non-finite loss) or Interrupted (SIGINT/SIGTERM).
    """
    from .cli.build import build_recipe
    from .cli.checks import validate
    from .engine import run
    from .errors import STATUS
    from .cli.run_dirs import claim
    from .cli.run_status import record_status

    cfg, overrides = as_config(cfg_or_overrides)
    found = _given_lrs(lr)
    if found is not None:
        OmegaConf.update(cfg, "scheduler.max_lr", float(found.max_lr), merge=False)
        OmegaConf.update(cfg, "scheduler.min_lr", float(found.min_lr), merge=False)
    if output_dir is None:  # created atomically: runs started in the same second get -2, -3...
        run_dir = claim(_clock_dir(DEFAULT_OUTPUT_ROOT), default_name=True)
    else:
        run_dir = Path(output_dir).expanduser().resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
    _save_hydra_files(run_dir, cfg, overrides)
    with job_logging(run_dir / "train.log", console=verbose):
        try:
            if not cfg.resume:  # resume: build_recipe validates the merged config
                validate(cfg)
            elif found is not None:
                raise ConfigError("lr= cannot be combined with resume: a resumed run keeps its own LRs")
            if getattr(found, "lrs", None):  # the curve find_lr measured, in this run's folder
                from .engine import plot_range_test

                plot_range_test(found, run_dir)
            return run(build_recipe(cfg), run_dir)
        except UserError as e:
            log.error("%s", e)
            record_status(run_dir, STATUS[e.exit_code], str(e), e.exit_code)  # as resnet-train records it
            raise


def _given_lrs(lr: Any) -> Any:
    """``train(lr=...)`` as an object with float ``max_lr``/``min_lr`` (an :class:`LRFinderOutput` gives its
    ``result``), or None; TypeError for anything else."""
    if lr is None:
        return None
    lr = getattr(lr, "result", lr)
    try:
        if all(float(getattr(lr, k)) > 0 for k in ("max_lr", "min_lr")):
            return lr
    except (AttributeError, TypeError, ValueError):
        pass
    raise TypeError(f"lr= takes what resnet_cli.find_lr returned (or an object with positive max_lr and min_lr), "
                    f"not {type(lr).__name__} {lr!r}")


class LRFinderOutput(NamedTuple):
    """What :func:`find_lr` returns; unpacks as ``result, figure = resnet_cli.find_lr(cfg)``."""

    result: "LRFindResult"
    """The range-test curve (``lrs``, smoothed ``losses``) and the ``max_lr``/``min_lr`` it picks."""
    figure: "Figure"
    """The LR finder plot (``plots/lr_finder.png``)."""


def find_lr(cfg_or_overrides: Any = (), output_dir: str | Path | None = None, *,
            verbose: bool = True) -> LRFinderOutput:
    """Run the LR range test of ``cfg`` alone with the training run's own set-up (data, model, batches,
    optimizer, seed) and ``scheduler.max_lr``/``min_lr`` = ``find``, so it picks the LRs ``resnet-train``
    would. ``output_dir``: where plots/lr_finder.png goes (default a temporary folder, deleted).

    Returns :class:`LRFinderOutput` ``(result, figure)``, LRs in the optimizer's units. Raises ConfigError,
    DataError (bad config or data) or ValueError (fewer than 3 finite losses: raise ``lr_finder.num_iter``).
    """
    from rich.console import Console

    from .cli.build import build_recipe
    from .cli.checks import validate
    from .core import distributed
    from .core.run_folder import Records, Timings
    from .data import load_data as _load
    from .diagnostics import plots
    from .engine import build_batches, build_model, prepare, resolve_run_lrs

    cfg, _ = as_config(cfg_or_overrides)
    OmegaConf.update(cfg, "scheduler.max_lr", "find", merge=False)
    OmegaConf.update(cfg, "scheduler.min_lr", "find", merge=False)
    cfg.resume = None
    validate(cfg)
    with tempfile.TemporaryDirectory(prefix="resnet-cli-lr-") as tmp:
        run_dir = Path(output_dir).expanduser().resolve() if output_dir is not None else Path(tmp)
        with job_logging(None, console=verbose):
            world, recipe = distributed.current(), build_recipe(cfg)
            prepare(recipe.config, run_dir, world, recipe.device)
            data = _load(recipe.config.data, recipe.config.seed)
            train_batches, _ = build_batches(recipe, data)
            model = build_model(recipe, len(data.classes))
            records = Records(run_dir, world, recipe.config, data, recipe.device, Timings(), Console(stderr=True))
            r = resolve_run_lrs(model, train_batches, records, recipe.optimizer)
    figure = plots.plot_lr_finder(r.lrs, r.losses, r.max_lr, r.min_lr, r.rule, r.accs, r.step_mode or "exp",
                                  r.smooth_f, r.earlier)
    return LRFinderOutput(r, figure)


def load_data(cfg_or_overrides: Any = ()) -> "DataBundle":
    """Load the dataset of a config as a training run does: a :class:`resnet_cli.data.DataBundle` (uint8
    images (N, H, W, 3), int64 labels (N,), classes, per-channel mean/std of the training images, 0-1);
    ConfigError or DataError for a bad config or missing data."""
    cfg = _run_config(cfg_or_overrides)
    from .data import load_data as _load

    return _load(cfg.data, cfg.seed)


def _run_config(cfg_or_overrides: Any, check: bool = True) -> Any:
    """The :class:`~resnet_cli.core.settings.RunConfig` of a config or overrides, validated with ``check``."""
    from .cli.checks import check_structure, validate
    from .core.settings import RunConfig

    cfg, _ = as_config(cfg_or_overrides)
    (validate if check else check_structure)(cfg)
    return RunConfig.from_dict(OmegaConf.to_container(cfg, resolve=True))


def evaluate(source: Any, data: Any = None, *, device: str = "auto", batch_size: int | None = None,
             precision: str | None = None, tta_flip: bool | None = None, weights: str = "model") -> "Evaluation":
    """Evaluate a trained model on a test set with the training run's pass (:func:`evaluate_batches`).

    Args:
        source: a checkpoint path (model and normalisation from it alone; by default its run's test split,
            reproducing the run's ``test_acc``/``test_loss``), a :class:`~resnet_cli.core.run_folder.RunResult`
            (its model and data) or an ``nn.Module`` (``data`` required; its training images' mean/std).
        data: a :class:`~resnet_cli.data.DataBundle`, a config or a list of overrides whose test split is
            read; class names must match the model's.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps`` (a RunResult's model stays where it is).
        batch_size, precision (``auto``, ``bf16``, ``fp32``), tta_flip: default the run's ``data.batch_size``,
            the precision it computed in (a checkpoint's record; fp32 with a warning where this device has no
            native bf16), ``trainer.tta_flip``, else 512, ``auto``, False.
        weights: ``model`` or ``ema`` (a checkpoint's EMA of the weights, ``trainer.ema_decay``).

    Returns :class:`~resnet_cli.diagnostics.report.Evaluation` (loss in nats/image, acc fraction 0-1, figures).
    Raises CheckpointError, DataError, ConfigError (bad checkpoint, data, option, or classes differing
    between model and data) or TypeError (unsupported ``source``/``data``, a bare module without ``data``).
    """
    from .data import DataBundle
    from .diagnostics.evaluation import evaluate as _evaluate

    if data is not None and not isinstance(data, DataBundle):  # only its data and seed are used: not validated
        data = _run_config(data, check=False)
    return _evaluate(source, data, device=device, batch_size=batch_size, precision=precision, tta_flip=tta_flip,
                     weights=weights)


def data_previews(data: "DataBundle", cfg: Any, n_samples: int = 32, n_draws: int = 11,
                  train_batches: Any = None) -> tuple["Figure", "Figure"]:
    """The two preview figures (sample grid, one image's augmentations; matplotlib Figures) a run with
    ``cfg`` (a config or overrides) writes for ``data``; ``train_batches`` default: built as the run
    builds them (ConfigError if they cannot be, e.g. a batch larger than N)."""
    from .cli.build import build_train_batches
    from .core.precision import resolve_device
    from .diagnostics.previews import previews

    cfg, _ = as_config(cfg)
    if train_batches is None:
        train_batches = build_train_batches(data, cfg, resolve_device(cfg.trainer.device))
    return previews(data, train_batches, int(cfg.seed), n_samples, n_draws, epochs=int(cfg.trainer.epochs))
