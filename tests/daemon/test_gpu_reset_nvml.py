"""A GPU reset on NVML's real dlopen path: the reset command asks the fake libnvidia-ml, from
another process, to reset a GPU, and the daemon finds the GPU again through NVML (real clock)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from navarch.daemon.config import DaemonConfig
from navarch.daemon.gpu import NvmlGpus
from navarch.daemon.nodelog import NodeLog
from navarch.daemon.processes import CommandProcesses
from navarch.daemon.recovery import GpuRecovery, StepFailed
from navarch.daemon.state import DaemonState
from navarch.telemetry.nvml import open_nvml
from navarch.testing import FakeNvml


class NoChecks:
    """The health reporter of a node without health checks."""

    async def check_now(self):
        return []


@pytest.fixture
def control(fake_nvml: FakeNvml, tmp_path, monkeypatch):
    path = tmp_path / "control"
    monkeypatch.setenv("FAKE_NVML_CONTROL", str(path))
    return path


def recovery(gpus: NvmlGpus, reset_command: str, **timeouts: timedelta) -> GpuRecovery:
    config = DaemonConfig(
        node_id="gpu-1",
        reset_command=reset_command,
        reset_timeout=timeouts.get("reset_timeout", timedelta(seconds=10)),
        gpu_return_timeout=timeouts.get("gpu_return_timeout", timedelta(seconds=2)),
    )
    log = NodeLog("gpu-1")
    return GpuRecovery(gpus, config, NoChecks(), CommandProcesses(DaemonState(), log), log)


@pytest.fixture
def gpus(fake_nvml, backend):
    gpus = NvmlGpus(open_nvml(backend=backend))
    yield gpus
    gpus.close()


async def test_a_clean_reset_brings_the_gpu_back_through_nvml(fake_nvml, control, gpus):
    fake_nvml.set(1, recovery_action=1, ecc_uncorrected_volatile=4)
    message = await recovery(gpus, FakeNvml.reset_command(control)).reset_gpu({"gpu": "1"}, {})
    assert message.startswith("GPU 1 (GPU-") and message.endswith("passes its health checks")
    assert fake_nvml.resets(1) == 1
    after = gpus.sample()[1]
    assert (after.recovery_action, after.ecc_uncorrected_volatile) == (0, 0)


async def test_a_reset_that_changes_nothing_fails_on_the_drivers_word(fake_nvml, control, gpus):
    fake_nvml.set(0, recovery_action=1)
    fake_nvml.set_reset_outcome(0, "fails")
    with pytest.raises(StepFailed) as failed:
        await recovery(gpus, FakeNvml.reset_command(control)).reset_gpu({"gpu": "0"}, {})
    assert str(failed.value) == "checks: the driver still asks for GPU_RESET on GPU 0"
    assert fake_nvml.resets(0) == 1


async def test_a_gpu_lost_in_the_reset_does_not_come_back(fake_nvml, control, gpus):
    fake_nvml.set_reset_outcome(0, "lost")
    uuid = gpus.inventory()[0].uuid
    with pytest.raises(StepFailed) as failed:
        await recovery(gpus, FakeNvml.reset_command(control)).reset_gpu({"gpu": "0"}, {})
    assert str(failed.value) == f"return: GPU 0 ({uuid}) did not come back within 2s"
    # The other GPU still answers through the session opened again after the reset.
    assert gpus.sample()[1].uuid == gpus.inventory()[1].uuid


async def test_processes_on_the_gpu_stop_the_reset_before_it_runs(fake_nvml, control, gpus):
    fake_nvml.set_processes(0, [31337, 4096], [1 << 30, 2 << 30])
    with pytest.raises(StepFailed) as failed:
        await recovery(gpus, FakeNvml.reset_command(control)).reset_gpu({"gpu": "0"}, {})
    assert str(failed.value) == (
        "processes: GPU 0 is still in use by pids 4096, 31337; the drain must end them first"
    )
    assert fake_nvml.resets(0) == 0


async def test_a_failing_reset_command_reports_its_stderr(fake_nvml, control, gpus):
    command = "echo 'Unable to reset GPU {gpu}: In use by another client' >&2; exit 3"
    with pytest.raises(StepFailed) as failed:
        await recovery(gpus, command).reset_gpu({"gpu": "1"}, {})
    assert str(failed.value) == (
        "reset: the reset command exited with status 3: "
        "Unable to reset GPU 1: In use by another client"
    )


async def test_a_reset_command_past_its_timeout_is_killed(fake_nvml, control, gpus):
    with pytest.raises(StepFailed) as failed:
        await recovery(gpus, "sleep 30", reset_timeout=timedelta(milliseconds=200)).reset_gpu(
            {"gpu": "0"}, {}
        )
    assert str(failed.value) == "reset: the reset command timed out after 200ms and was killed"
