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
import importlib.util as _importlib_util
import pkgutil as _pkgutil

__version__ = "0.1.0"

# public name -> submodule that defines it: the one list (``__all__`` is derived from it)
_EXPORTS = {
    # running the recipe
    "compose": "cli.composition", "train": "api", "find_lr": "api", "evaluate": "api", "load_data": "api",
    "load_model": "diagnostics.evaluation", "default_output_dir": "api", "Evaluation": "diagnostics.report",
    "LRFinderOutput": "api", "RunResult": "core.run_folder", "LRFindResult": "core.schedule",
    # figures (matplotlib Figures; save with save_figure)
    "plot_one_cycle": "diagnostics.evaluation", "plot_history": "diagnostics.evaluation",
    "plot_lr_finder": "diagnostics.plots", "plot_lr_schedule": "diagnostics.plots", "plot_curves": "diagnostics.plots",
    "save_figure": "diagnostics.plots", "plot_samples": "diagnostics.previews",
    "plot_augmentations": "diagnostics.previews", "data_previews": "api",
    # diagnostics: metrics, Grad-CAM, target layers, the run folder's report (figures with the others above)
    "class_accuracy": "diagnostics.interpretation", "confusion_matrix": "diagnostics.interpretation",
    "find_misclassified": "diagnostics.interpretation", "gradcam_maps": "diagnostics.gradcam",
    "default_target_layers": "models.summary", "write_diagnostics": "diagnostics.report",
    "plot_misclassified": "diagnostics.plots", "plot_confusion_matrix": "diagnostics.plots",
    "plot_gradcam_grid": "diagnostics.plots",
    # networks
    "CustomResNet": "models", "ResNet18": "models",
    # errors
    "UserError": "errors", "ConfigError": "errors", "DataError": "errors", "CheckpointError": "errors",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    """Import public names and submodules (``resnet_cli.models``...) on first access."""
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    if _importlib_util.find_spec(f"{__name__}.{name}") is not None:
        return _importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | set(_EXPORTS) | {m.name for m in _pkgutil.iter_modules(__path__)})
