"""``resnet-export``: a trained checkpoint's network as ONNX or TorchScript (timm's ``onnx_export.py``), checked
against PyTorch on a batch of the run's test images (softmax probabilities compared; above ``tolerance``, exit
2), into its own run folder (``outputs/export/<date>/<time>``; examples in README.md).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from .composition import config_dir
from .schema import register_configs
from .entry import run_hydra, task_wrapper
from ..errors import first_line
from .job import JobInfo

log = logging.getLogger("resnet_cli")

FORMATS = {"onnx": ("model.onnx", ("onnx", "onnxruntime")), "torchscript": ("model.pt", ())}
"""format -> (default file name, packages it needs: the ``onnx`` extra)."""

register_configs()


def opset_range() -> tuple[int, int]:
    """The ONNX opsets torch's TorchScript-based exporter writes, ``(lowest, highest)``."""
    from torch.onnx import _constants

    return (int(getattr(_constants, "ONNX_MIN_OPSET", 7)),
            int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", getattr(_constants, "ONNX_MAX_OPSET", 17))))


def export_model(model: Any, example: Any, path: Path, fmt: str, opset: int = 17) -> Path:
    """Write ``model`` (eval mode, CPU) traced on ``example`` float32 (N, 3, S, S) to ``path``: ``onnx``
    (TorchScript-based torch.onnx.export, dynamic batch axis, input ``images``, output ``logits``) or
    ``torchscript`` (torch.jit.trace)."""
    import warnings

    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning, UserWarning))
        if fmt == "onnx":
            try:
                torch.onnx.export(model, (example,), str(path), input_names=["images"], output_names=["logits"],
                                  dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
                                  opset_version=opset, dynamo=False)
            except torch.onnx.OnnxExporterError as e:  # e.g. an operator the opset lacks
                from ..errors import ConfigError

                raise ConfigError(f"opset={opset}: torch cannot export this network at that opset "
                                  f"({first_line(e)}); use a higher opset (default 17)") from None
        else:
            torch.jit.trace(model, example).save(str(path))
    return path


def run_exported(path: Path, fmt: str, x: Any) -> Any:
    """Logits float32 (N, C) of the exported file on ``x`` float32 (N, 3, S, S), CPU (onnxruntime or torch.jit)."""
    import warnings

    import torch

    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(["logits"], {"images": x.numpy()})[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return loaded(x)


def export_checkpoint(cfg: Any, run_dir: str | Path) -> dict[str, Any]:
    """Everything ``resnet-export`` does for a composed ``export`` config; writes and returns ``export.json``
    (max_abs_diff: largest absolute difference of the probabilities, 0-1; top1_agreement: fraction 0-1).

    Raises ConfigError (no ``ckpt``, an unknown ``format`` or its packages missing, ``batch_size`` < 1, a
    negative ``tolerance``), CheckpointError, DataError (unreadable test images: set ``data_root``) or
    ExportMismatch (the largest probability difference exceeds ``tolerance``).
    """
    import importlib.util

    import torch

    from ..data.batches import normalize
    from ..core.checkpoint import model_from_checkpoint, write_json
    from ..data import load_test_split
    from ..errors import ConfigError, ExportMismatch
    from ..diagnostics.inference import check_finite_weights
    from ..core.run_folder import check_writable

    if not cfg.ckpt:
        raise ConfigError("ckpt is required: resnet-export ckpt=<run folder>/checkpoints/last.pt format=onnx")
    if cfg.format not in FORMATS:
        raise ConfigError(f"format={cfg.format!r} is not allowed: one of {', '.join(FORMATS)}")
    for pkg in FORMATS[cfg.format][1]:
        if importlib.util.find_spec(pkg) is None:
            raise ConfigError(f"format={cfg.format} needs the {pkg} package, which is not installed: "
                              "pip install 'resnet-cli[onnx]'")
    if cfg.batch_size < 1:
        raise ConfigError(f"batch_size={cfg.batch_size} is not allowed: must be >= 1")
    low, high = opset_range()
    if not low <= cfg.opset <= high:
        raise ConfigError(f"opset={cfg.opset} is not allowed: torch {torch.__version__} exports ONNX opsets "
                          f"{low}..{high} (default 17)")
    if not cfg.tolerance >= 0:
        raise ConfigError(f"tolerance={cfg.tolerance} is not allowed: must be >= 0 (probabilities, 0-1)")
    run_dir = Path(run_dir)
    check_writable(run_dir)
    model, ckpt = model_from_checkpoint(cfg.ckpt, "cpu")
    check_finite_weights(model, cfg.ckpt)
    seed = int(ckpt["config"].get("seed", 0))
    try:
        images, _, _ = load_test_split(ckpt["config"]["data"], seed, int(cfg.batch_size), cfg.data_root)
    except ConfigError as e:  # the subset's message names data.test_subset, which is resnet-train's key
        raise ConfigError(str(e).replace(f"data.test_subset={cfg.batch_size}", f"batch_size={cfg.batch_size}")
                          .split(": use")[0] + ": lower resnet-export's batch_size") from None
    x = normalize(torch.from_numpy(images), torch.tensor(ckpt["mean"], dtype=torch.float32),
                  torch.tensor(ckpt["std"], dtype=torch.float32)).contiguous()
    path = Path(cfg.output) if cfg.output else run_dir / FORMATS[cfg.format][0]
    if path.is_dir():  # output=<existing folder>: the default file name inside it
        path = path / FORMATS[cfg.format][0]
    export_model(model, x[:2], path, cfg.format, int(cfg.opset))
    with torch.no_grad():
        ref = torch.softmax(model(x).float(), 1)
    got = torch.softmax(run_exported(path, cfg.format, x).float(), 1)
    diff = float((ref - got).abs().max())
    agree = float((ref.argmax(1) == got.argmax(1)).float().mean())
    result = {"status": "completed" if diff <= cfg.tolerance else "failed", "file": str(path.resolve()),
              "format": cfg.format, "max_abs_diff": diff, "top1_agreement": agree, "tolerance": float(cfg.tolerance),
              "images": len(x), "input": ["N", 3, int(ckpt["image_size"]), int(ckpt["image_size"])],
              "input_name": "images", "output_name": "logits", "mean": list(ckpt["mean"]), "std": list(ckpt["std"]),
              "classes": list(ckpt["classes"]), "ckpt": str(Path(cfg.ckpt).resolve())}
    write_json(run_dir / "export.json", result)
    log.info("%s written to %s; on %d test images the largest probability difference from PyTorch is %.2e "
             "(tolerance %.1e), top-1 agreement %.1f%%", cfg.format, path, len(x), diff, cfg.tolerance, 100 * agree)
    if diff > cfg.tolerance:
        raise ExportMismatch(f"the exported {cfg.format} model differs from PyTorch by {diff:.2e} in probability "
                             f"(> tolerance={cfg.tolerance:g}) on {len(x)} test images; {path} kept for inspection")
    return result


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="export")
@task_wrapper
def hydra_main(cfg: DictConfig, run_dir: Path, job: JobInfo) -> float:
    """Export ``cfg.ckpt`` into ``run_dir``; returns the largest probability difference."""
    return export_checkpoint(cfg, run_dir)["max_abs_diff"]


def main() -> None:
    """The ``resnet-export`` console script (config errors as one line, exit 2)."""
    run_hydra(hydra_main)
