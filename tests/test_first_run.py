"""What a new user meets first (issue 21): ``--version`` names resnet-cli, the model summary is one
console line (the table goes to the run folder)."""

from __future__ import annotations

import pytest

from conftest import run_cli
from resnet_cli.cli.entry import package_version


@pytest.mark.parametrize("name", ["resnet-train", "resnet-gradcam"])
def test_version_is_resnet_clis_not_hydras(name, tmp_path):
    proc = run_cli(name, ["--version"], cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == f"{name} (resnet-cli) {package_version()}"
    assert "Hydra" not in proc.stdout + proc.stderr
    assert not (tmp_path / "outputs").exists()  # no run folder for a question


def test_package_version_comes_from_the_installed_metadata():
    from importlib.metadata import version

    assert package_version() == version("resnet-cli")


def test_the_model_summary_is_one_console_line():
    from resnet_cli.engine import summary_line
    from resnet_cli.models.summary import model_summary
    from resnet_cli.models import CustomResNet

    table = model_summary(CustomResNet(num_classes=10))
    assert len(table.splitlines()) > 30  # the whole table: model_summary.txt
    line = summary_line(table)
    assert "\n" not in line and line.startswith("Total params: 6,573,130") and "Total mult-adds" in line
    assert summary_line("just text\nmore") == "just text"
