"""resnet-cli: the custom ResNet + One Cycle CIFAR-10 recipe as a Hydra command-line tool and a
small Python API on the same code path (see :mod:`resnet_cli.api`)::

    import resnet_cli

    cfg = resnet_cli.compose(["data=image_folder", "data.root=/data/cifar10-jpeg"])
    lr, fig = resnet_cli.find_lr(cfg)            # LR range test + its plot
    run = resnet_cli.train(cfg)                  # what `resnet-train` runs; RunResult
    ev = resnet_cli.evaluate(run.checkpoint)     # loss, acc (fraction 0-1), predictions
    ev.plot_misclassified(); ev.plot_gradcam()   # matplotlib Figures, inline in a notebook

The names below are imported on first use, so ``import resnet_cli`` stays light (no torch,
Hydra or matplotlib until a function is called).
"""

import os as _os

# albumentations checks PyPI for a newer release on import; a training CLI must not phone home
# (and on offline machines the check only costs time).
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING

__version__ = "0.1.0"

# public name -> submodule that defines it
_EXPORTS = {
    # running the recipe
    "compose": "api", "train": "api", "find_lr": "api", "evaluate": "evaluation", "load_data": "api",
    "load_model": "evaluation", "default_output_dir": "api", "Evaluation": "diagnostics", "LRFinderOutput": "api",
    "RunResult": "engine", "LRFindResult": "schedule",
    # figures (matplotlib Figures; save with save_figure)
    "plot_one_cycle": "evaluation", "plot_history": "evaluation",
    "plot_lr_finder": "plots", "plot_lr_schedule": "plots", "plot_curves": "plots", "save_figure": "plots",
    "plot_samples": "previews", "plot_augmentations": "previews", "data_previews": "previews",
    # diagnostics (resnet_cli.metrics, cam, layers, diagnostics; figures in plots)
    "class_accuracy": "metrics", "confusion_matrix": "metrics", "find_misclassified": "metrics",
    "gradcam_maps": "cam", "default_target_layers": "layers", "write_diagnostics": "diagnostics",
    "plot_misclassified": "plots", "plot_confusion_matrix": "plots", "plot_gradcam_grid": "plots",
    # networks
    "CustomResNet": "models", "ResNet18": "models",
    # errors
    "UserError": "errors", "ConfigError": "errors", "DataError": "errors", "CheckpointError": "errors",
}

_SUBMODULES = (  # in recipe order (README, "How the code is laid out")
    "cli", "errors", "config", "data", "decode", "cache", "batches", "previews", "models", "lr_finder", "schedule",
    "engine", "fit", "run_folder", "metrics", "layers", "cam", "diagnostics", "plots", "evaluation", "api",
    "checkpoint", "loggers", "distributed", "sweep", "train",
)

__all__ = [
    "CheckpointError", "ConfigError", "CustomResNet", "DataError", "Evaluation", "LRFindResult",
    "LRFinderOutput", "ResNet18", "RunResult", "UserError", "class_accuracy", "compose",
    "confusion_matrix", "data_previews", "default_output_dir", "default_target_layers", "evaluate",
    "find_lr", "find_misclassified", "gradcam_maps", "load_data", "load_model",
    "plot_augmentations", "plot_confusion_matrix", "plot_curves", "plot_gradcam_grid",
    "plot_history", "plot_lr_finder", "plot_lr_schedule", "plot_misclassified", "plot_one_cycle",
    "plot_samples", "save_figure", "train", "write_diagnostics", "__version__",
]


def __getattr__(name: str):
    """Import public names and submodules (``resnet_cli.models``...) on first access."""
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return _importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))


if _TYPE_CHECKING:  # pragma: no cover - static analysers and IDEs see the real names
    from .api import LRFinderOutput, compose, default_output_dir, find_lr, load_data, train
    from .cam import gradcam_maps
    from .diagnostics import Evaluation, write_diagnostics
    from .engine import RunResult
    from .errors import CheckpointError, ConfigError, DataError, UserError
    from .evaluation import evaluate, load_model, plot_history, plot_one_cycle
    from .layers import default_target_layers
    from .metrics import class_accuracy, confusion_matrix, find_misclassified
    from .models import CustomResNet, ResNet18
    from .plots import (plot_confusion_matrix, plot_curves, plot_gradcam_grid, plot_lr_finder, plot_lr_schedule,
                        plot_misclassified, save_figure)
    from .previews import data_previews, plot_augmentations, plot_samples
    from .schedule import LRFindResult
