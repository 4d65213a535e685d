"""The Python API: :func:`train` and :func:`find_lr` run the ``resnet-train`` recipe from a
notebook or a script on the CLI's code path: the config composed as the CLI composes it
(:mod:`resnet_cli.composition`), checked by the same ``validate`` and trained by the same
:func:`resnet_cli.engine.run`, so the same overrides and seed give the same run folder and
metrics. Evaluating a trained model: :mod:`resnet_cli.evaluation`. Bad input raises
:class:`resnet_cli.errors.UserError` subclasses with the CLI's one-line messages.
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

from .composition import as_config
from .errors import UserError

if TYPE_CHECKING:  # pragma: no cover - typing only; keeps `import resnet_cli` light
    from matplotlib.figure import Figure

    from .data import DataBundle
    from .run_folder import RunResult
    from .schedule import LRFindResult

log = logging.getLogger("resnet_cli")

LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
"""Hydra's default ``job_logging`` format, used for the API's ``train.log``."""

DEFAULT_OUTPUT_ROOT = Path("outputs") / "api"
"""Where :func:`train` puts run folders by default (relative to the working directory, like
the CLI's ``outputs/``): ``outputs/api/<YYYY-MM-DD>/<HH-MM-SS>``."""


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
        cfg_or_overrides: a config from :func:`resnet_cli.compose` (copied, not modified) or a list of
            overrides (composed with :func:`resnet_cli.compose`).
        output_dir: the run folder; default :func:`default_output_dir`
            (``outputs/api/<date>/<time>`` under the working directory).
        verbose: also print the log lines to stdout (a notebook cell's output), unless logging
            already has a stream handler. The engine's progress bar goes to stderr regardless
            (in Jupyter only with ipywidgets installed).

    Returns:
        :class:`resnet_cli.run_folder.RunResult`: ``metrics`` (the dict in metrics.json: test_acc,
        test_loss, train_acc, train_loss, max_lr, min_lr, history per epoch; accuracies are
        fractions 0-1), ``run_dir``, ``model`` (trained, eval mode, on the training device),
        ``checkpoint`` (``run_dir/checkpoints/last.pt``) and ``data`` (the DataBundle used).

    The run folder is the CLI's: metrics.json, history.csv, checkpoints/last.pt, plots/*.png,
    plus ``train.log`` (what Hydra's job logging writes for the CLI) and ``.hydra/config.yaml``
    / ``.hydra/overrides.yaml``.

    Raises:
        ConfigError, DataError, CheckpointError: bad input, before any training (metrics.json
            then says ``status: failed``, as for the CLI).
        Diverged, Interrupted (:mod:`resnet_cli.errors`): non-finite loss; SIGINT/SIGTERM (a
            notebook's "interrupt kernel") after which ``resume=<checkpoint>`` continues.
    """
    from .config import validate
    from .engine import run
    from .errors import STATUS
    from .run_status import record_status

    cfg, overrides = as_config(cfg_or_overrides)
    run_dir = Path(output_dir).expanduser().resolve() if output_dir is not None else default_output_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    job_name = "train"
    _save_hydra_files(run_dir, cfg, overrides)
    with job_logging(run_dir / f"{job_name}.log", console=verbose):
        try:
            if not cfg.get("resume"):  # resume: the engine validates the merged config
                validate(cfg)
            return run(cfg, run_dir)
        except UserError as e:
            log.error("%s", e)
            record_status(run_dir, STATUS[e.exit_code], str(e), e.exit_code)  # as resnet-train records it
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

    The training run's own steps (:func:`resnet_cli.engine.prepare`, ``load_data``,
    ``build_batches``, ``build_model``, ``resolve_run_lrs``; not the previews, the model summary or training)
    prepare the data, model, augmented batches, optimizer and seed exactly as a run does, with ``scheduler.max_lr`` and
    ``scheduler.min_lr`` set to ``find`` (and ``resume`` to null), so the result equals the LRs
    ``resnet-train`` with those settings picks (``lr_finder.*`` settings apply; rule in
    :mod:`resnet_cli.lr_finder`). To train with them without repeating the test, set
    ``cfg.scheduler.max_lr = out.result.max_lr`` and ``cfg.scheduler.min_lr = out.result.min_lr``.

    Args:
        cfg_or_overrides: a config from :func:`resnet_cli.compose` or a list of overrides.
        output_dir: where plots/lr_finder.png goes; default a temporary folder that is deleted
            afterwards.
        verbose: print the log lines.

    Returns:
        :class:`LRFinderOutput` ``(result, figure)``; learning rates in the optimizer's units.

    Raises:
        ConfigError, DataError: bad config or data.
        ValueError: the test produced fewer than 3 finite losses (raise ``lr_finder.num_iter``).
    """
    from rich.console import Console

    from . import distributed, plots
    from .config import validate
    from .data import load_data as _load
    from .engine import build_batches, build_model, prepare, resolve_run_lrs
    from .run_folder import Records, Timings

    cfg, _ = as_config(cfg_or_overrides)
    OmegaConf.update(cfg, "scheduler.max_lr", "find", merge=False)
    OmegaConf.update(cfg, "scheduler.min_lr", "find", merge=False)
    cfg.resume = None
    validate(cfg)
    with tempfile.TemporaryDirectory(prefix="resnet-cli-lr-") as tmp:
        run_dir = Path(output_dir).expanduser().resolve() if output_dir is not None else Path(tmp)
        with job_logging(None, console=verbose):
            world = distributed.current()
            cfg, _, device = prepare(cfg, run_dir, world)
            data = _load(cfg.data, cfg.seed)
            train_batches, _ = build_batches(cfg, data, device)
            model = build_model(cfg, len(data.classes), device)
            records = Records(run_dir, world, cfg, data, device, Timings(), Console(stderr=True))
            r = resolve_run_lrs(model, train_batches, records)
    return LRFinderOutput(r, plots.plot_lr_finder(r.lrs, r.losses, r.max_lr, r.min_lr, r.rule, r.accs, r.step_mode or "exp",
                                                    r.smooth_f, r.earlier))


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

    cfg, _ = as_config(cfg_or_overrides)
    validate(cfg)
    return _load(cfg.data, int(cfg.seed))
