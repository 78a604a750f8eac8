"""`navarch gpus` against the fake libnvidia-ml."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from navarch.cli.gpus import gpus
from navarch.telemetry import nvml
from navarch.testing import FakeNvml


def test_table_shows_every_gpu(fake_nvml: FakeNvml) -> None:
    fake_nvml.set(1, remapped_rows_pending=1, ecc_uncorrected_volatile=3, nvlink_up_mask=0b1)
    fake_nvml.fail("nvmlDeviceGetPowerUsage", nvml.Return.NOT_SUPPORTED, index=1)
    result = CliRunner().invoke(gpus, [], env={"COLUMNS": "200"}, catch_exceptions=False)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    gpu0 = next(line for line in lines if "GPU-fa4e0000-fake" in line)
    gpu1 = next(line for line in lines if "GPU-fa4e0001-fake" in line)
    assert "NVIDIA H100 80GB HBM3" in gpu0
    assert "00000000:18:00.0" in gpu0
    assert "1024 / 81559" in gpu0
    assert "70 / 700" in gpu0
    assert gpu0.rstrip().endswith("ok")
    assert "│ -" in gpu1  # the unsupported power reading
    assert gpu1.rstrip().endswith("3 uncorrected ECC errors, reset pending, 17 NVLinks down")


def test_json_holds_the_whole_samples(fake_nvml: FakeNvml) -> None:
    fake_nvml.lose(1)
    result = CliRunner().invoke(gpus, ["--json"], catch_exceptions=False)
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert [r["index"] for r in rows] == [0, 1]
    assert rows[0]["uuid"] == "GPU-fa4e0000-fake-4000-8000-000000000000"
    assert rows[0]["memoryTotalBytes"] == 81559 << 20
    assert rows[0]["fieldStatus"]["memory"] == "SUCCESS"
    assert rows[1]["status"] == "GPU_IS_LOST"
    assert rows[1]["name"] is None


@pytest.mark.parametrize("args", [[], ["--json"]])
def test_no_driver_is_not_an_error(args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(nvml.LIBRARY_ENV, "/nonexistent/libnvidia-ml.so.1")
    result = CliRunner().invoke(gpus, args, catch_exceptions=False)
    assert result.exit_code == 0
    expected = "no NVIDIA GPUs found (libnvidia-ml not loaded: /nonexistent/libnvidia-ml.so.1:"
    if args:
        assert json.loads(result.stdout) == []
        assert result.stderr.startswith(expected)
    else:
        assert result.output.startswith(expected)


def test_broken_driver_is_an_error(fake_nvml: FakeNvml) -> None:
    fake_nvml.fail("nvmlInitWithFlags", nvml.Return.LIB_RM_VERSION_MISMATCH)
    result = CliRunner().invoke(gpus, [])
    assert isinstance(result.exception, nvml.LibRmVersionMismatch)


@pytest.mark.slow
def test_navarch_gpus_json_in_a_real_process(
    fake_nvml: FakeNvml, backend: nvml.Backend, navarch
) -> None:
    env = {nvml.LIBRARY_ENV: str(fake_nvml.path), "FAKE_NVML_DEVICES": "3"}
    if backend == "python":
        env["NAVARCH_DISABLE_NATIVE"] = "1"
    result = navarch("gpus", "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["uuid"] for r in rows] == [
        f"GPU-fa4e000{i}-fake-4000-8000-00000000000{i}" for i in range(3)
    ]
    assert all(r["status"] == "SUCCESS" for r in rows)
