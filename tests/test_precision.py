"""trainer.precision: bf16 where the device computes it natively (CUDA, AVX512-BF16/AMX CPUs),
fp32 elsewhere; bf16 refused in one line where the device lacks it (issue 19)."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from resnet_cli.core import precision
from resnet_cli.cli.composition import config_dir
from resnet_cli.cli.checks import validate
from resnet_cli.cli.schema import register_configs
from resnet_cli.errors import ConfigError
from resnet_cli.core.precision import autocast, native_bf16, resolve_precision

register_configs()
CPU = torch.device("cpu")


@pytest.fixture
def cpu_bf16(monkeypatch):
    """Pretend the CPU has (True) or lacks (False) native bf16."""
    def set_to(value: bool):
        monkeypatch.setattr(precision, "native_bf16", lambda device: value)
    return set_to


def test_native_bf16_asks_torch_for_the_cpu_features(monkeypatch):
    native_bf16.cache_clear()
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert native_bf16(CPU) is True
    native_bf16.cache_clear()
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert native_bf16(CPU) is False
    native_bf16.cache_clear()
    assert native_bf16(torch.device("meta")) is False


@pytest.mark.parametrize("has_bf16, setting, expected", [
    (True, "auto", "bf16"), (False, "auto", "fp32"), (True, "fp32", "fp32"), (False, "fp32", "fp32"),
    (True, "bf16", "bf16"),
])
def test_resolve_precision(cpu_bf16, has_bf16, setting, expected):
    cpu_bf16(has_bf16)
    assert resolve_precision(setting, CPU) == expected


def test_bf16_on_a_cpu_without_it_is_one_line(cpu_bf16):
    cpu_bf16(False)
    with pytest.raises(ConfigError) as info:
        resolve_precision("bf16", CPU)
    msg = str(info.value)
    assert msg.startswith("trainer.precision='bf16' is not allowed") and "AVX512-BF16" in msg and "\n" not in msg
    assert "trainer.precision=auto" in msg


def test_unknown_precision_is_refused():
    with pytest.raises(ConfigError, match=r"^trainer.precision='fp16' is not allowed: one of auto, bf16, fp32"):
        resolve_precision("fp16", CPU)


def test_autocast_computes_convolutions_in_bf16_only_when_chosen(cpu_bf16):
    conv, x = torch.nn.Conv2d(3, 4, 3), torch.randn(2, 3, 8, 8)
    cpu_bf16(True)
    with autocast(CPU, "auto"):
        assert conv(x).dtype == torch.bfloat16
    with autocast(CPU, "fp32"):
        assert conv(x).dtype == torch.float32
    cpu_bf16(False)
    with autocast(CPU, "auto"):
        assert conv(x).dtype == torch.float32


def test_validate_refuses_bf16_before_any_data(cpu_bf16, tmp_path):
    cpu_bf16(False)
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(Path(config_dir())), version_base="1.3"):
        cfg = compose("train", overrides=["data=image_folder", f"data.root={tmp_path}", "trainer.device=cpu",
                                          "trainer.precision=bf16"])
    with pytest.raises(ConfigError, match=r"^trainer.precision='bf16' is not allowed"):
        validate(cfg)
