"""examples/quickstart.ipynb runs top to bottom in a real Jupyter kernel (nbclient + ipykernel).

The kernel is started from a kernel spec written for this test whose argv is *this* interpreter
(``sys.executable -m ipykernel_launcher``), so the notebook imports the resnet_cli installed in
the environment under test, whatever ``python3`` kernel spec the machine has. The notebook runs
in a temporary working directory (its run folder lands there) with ``RESNET_CLI_DATA`` pointing
at the offline CIFAR-10 copy; any cell error fails the test.
"""

from __future__ import annotations

import pytest
import importlib.util
import json
import sys
from pathlib import Path

import nbformat  # nbformat, nbclient and ipykernel come with the `test` extra: missing = a failure

from conftest import DATA_ROOT, ROOT, needs_data

NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def _code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def test_notebook_is_committed_clean():
    """No outputs or execution counts in the repository copy; the install cell only comments."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in _code_cells(nb):
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]
    install = _code_cells(nb)[0].source
    assert "pip install" in install
    assert all(not line.strip() or line.lstrip().startswith("#") for line in install.splitlines())
    text = "\n".join(c.source for c in nb.cells)
    assert "CPU_OVERRIDES" in text and "drop" in text  # the cell that says what to drop on a GPU
    assert "def " not in "\n".join(c.source for c in _code_cells(nb))  # no training code in the notebook


def _kernel_manager(kernel_dir: Path):
    """A KernelManager whose only kernel spec runs this interpreter."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec = kernel_dir / "resnet-cli-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "resnet-cli test", "language": "python",
    }))
    return KernelManager(kernel_name="resnet-cli-test", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]))


@pytest.mark.slow
@needs_data
def test_quickstart_runs_top_to_bottom(tmp_path, monkeypatch):
    assert importlib.util.find_spec("ipykernel"), "ipykernel missing: pip install -e '.[test]'"
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("RESNET_CLI_DATA", str(DATA_ROOT))
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend must be used
    km = _kernel_manager(tmp_path / "kernels")
    client = NotebookClient(nb, km=km, timeout=1800, allow_errors=False, record_timing=False,
                            resources={"metadata": {"path": str(work)}})
    client.execute()  # raises CellExecutionError naming the cell on any error

    # every cell ran, in order, with no error output
    cells = _code_cells(nb)
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1))
    outputs = [o for c in cells for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]

    # the figures were shown inline: previews (2), LR finder, curves, One Cycle, misclassified,
    # Grad-CAM, confusion matrix
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= 8, [c.source[:40] for c in cells if not any("image/png" in o.get("data", {}) for o in c.outputs)]

    # the run folder was written where the kernel ran, and it is a completed run
    runs = sorted(work.glob("outputs/api/*/*/metrics.json"))
    assert len(runs) == 1, runs
    metrics = json.loads(runs[0].read_text())
    assert metrics["status"] == "completed" and metrics["epochs_done"] == 2
    assert metrics["dataset"]["root"] == str(DATA_ROOT.resolve())
    run_dir = runs[0].parent
    for rel in ("train.log", "checkpoints/last.pt", "plots/samples.png", "plots/augmentations.png",
                "plots/curves.png", "plots/lr_schedule.png"):
        assert (run_dir / rel).is_file(), rel

    # the evaluation cell reproduced the run's test accuracy
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"(the run said {100 * metrics['test_acc']:.2f}%)" in text
    assert f"test accuracy {100 * metrics['test_acc']:.2f}% on " in text
