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
    "compose": "api", "train": "api", "find_lr": "api", "evaluate": "api", "load_data": "api",
    "load_model": "api", "default_output_dir": "api", "Evaluation": "api", "LRFinderOutput": "api",
    "RunResult": "engine", "LRFindResult": "lr_finder",
    # figures (matplotlib Figures; save with save_figure)
    "plot_one_cycle": "api", "plot_history": "api",
    "plot_lr_finder": "plots", "plot_lr_schedule": "plots", "plot_curves": "plots", "save_figure": "plots",
    "plot_samples": "previews", "plot_augmentations": "previews", "data_previews": "previews",
    # diagnostics (resnet_cli.explain)
    "class_accuracy": "explain", "confusion_matrix": "explain", "find_misclassified": "explain",
    "gradcam_maps": "explain", "default_target_layers": "explain", "write_diagnostics": "explain",
    "plot_misclassified": "explain", "plot_confusion_matrix": "explain", "plot_gradcam_grid": "explain",
    # networks
    "CustomResNet": "models", "ResNet18": "models",
    # errors
    "UserError": "errors", "ConfigError": "errors", "DataError": "errors", "CheckpointError": "errors",
}

_SUBMODULES = (
    "api", "augment", "checkpoint", "cli", "config", "data", "engine", "errors", "explain",
    "lr_finder", "models", "plots", "previews", "train",
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
    from .api import (Evaluation, LRFinderOutput, compose, default_output_dir, evaluate, find_lr, load_data,
                      load_model, plot_history, plot_one_cycle, train)
    from .engine import RunResult
    from .errors import CheckpointError, ConfigError, DataError, UserError
    from .explain import (class_accuracy, confusion_matrix, default_target_layers, find_misclassified, gradcam_maps,
                          plot_confusion_matrix, plot_gradcam_grid, plot_misclassified, write_diagnostics)
    from .lr_finder import LRFindResult
    from .models import CustomResNet, ResNet18
    from .plots import plot_curves, plot_lr_finder, plot_lr_schedule, save_figure
    from .previews import data_previews, plot_augmentations, plot_samples
