"""Running processes and GPU resets through both NVML backends, against the fake libnvidia-ml."""

from __future__ import annotations

import subprocess

import pytest

from navarch.telemetry import nvml
from navarch.telemetry.nvml_processes import (
    ATTEMPTS,
    FIRST_CAPACITY,
    SLACK,
    GpuProcess,
    list_processes,
)
from navarch.testing import FakeNvml

COMPUTE_V3 = "nvmlDeviceGetComputeRunningProcesses_v3"
GRAPHICS_V3 = "nvmlDeviceGetGraphicsRunningProcesses_v3"


def test_an_idle_gpu_has_no_processes(fake_nvml, open_fake):
    assert open_fake().running_processes(0) == ()
    assert fake_nvml.calls(COMPUTE_V3) == 1
    assert fake_nvml.calls(GRAPHICS_V3) == 1


def test_compute_then_graphics_processes_with_their_memory(fake_nvml, open_fake):
    fake_nvml.set_processes(1, [4242, 77], [3 << 30, 1 << 20])
    fake_nvml.set_processes(1, [900], graphics=True)
    assert open_fake().running_processes(1) == (
        GpuProcess(pid=4242, used_memory_bytes=3 << 30, kind="compute"),
        GpuProcess(pid=77, used_memory_bytes=1 << 20, kind="compute"),
        GpuProcess(pid=900, used_memory_bytes=None, kind="graphics"),
    )
    assert open_fake().running_processes(0) == ()


def test_more_processes_than_the_first_buffer_holds_are_asked_for_again(fake_nvml, open_fake):
    pids = list(range(1000, 1000 + FIRST_CAPACITY + 5))
    fake_nvml.set_processes(0, pids)
    found = open_fake().running_processes(0)
    assert [p.pid for p in found] == pids
    # One call found the buffer too small and said how many there are; the second fit them.
    assert fake_nvml.calls(COMPUTE_V3) == 2


def test_processes_that_keep_starting_give_up_after_a_few_tries():
    class Growing:
        """Each call finds more processes than the room the last count asked for."""

        def __init__(self):
            self.calls = 0

        def processes(self, index, kind, capacity):
            self.calls += 1
            return int(nvml.Return.INSUFFICIENT_SIZE), [], capacity + SLACK + 1

    growing = Growing()
    with pytest.raises(nvml.NVMLError) as failed:
        list_processes(growing, 0)
    assert failed.value.code is nvml.Return.INSUFFICIENT_SIZE
    assert growing.calls == ATTEMPTS


def test_a_lost_gpu_raises_gpu_is_lost(fake_nvml, open_fake):
    session = open_fake()
    fake_nvml.lose(1)
    with pytest.raises(nvml.GpuIsLost):
        session.running_processes(1)


def test_a_driver_without_graphics_queries_lists_compute_processes(fake_nvml, open_fake):
    fake_nvml.set_processes(0, [12])
    fake_nvml.fail(GRAPHICS_V3, int(nvml.Return.NOT_SUPPORTED))
    assert [p.pid for p in open_fake().running_processes(0)] == [12]


def test_older_drivers_answer_through_the_v2_queries(make_fake_nvml, backend):
    fake = make_fake_nvml("FAKE_LEGACY")
    fake.set_processes(0, [55])
    with nvml.open_nvml(backend=backend) as session:
        assert [p.pid for p in session.running_processes(0)] == [55]
    assert fake.calls("nvmlDeviceGetComputeRunningProcesses_v2") == 1


def test_nvidia_ml_py_reads_the_same_processes(fake_nvml, pynvml_for):
    fake_nvml.set_processes(0, [4242], [3 << 30])
    pynvml = pynvml_for(fake_nvml)
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    [process] = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
    assert (process.pid, process.usedGpuMemory) == (4242, 3 << 30)


@pytest.mark.parametrize(
    ("outcome", "back", "recovery_action"),
    [("clean", True, 0), ("fails", True, 1), ("lost", False, None)],
)
def test_a_reset_asked_for_by_another_process_shows_through_nvml(
    fake_nvml, backend, tmp_path, monkeypatch, outcome, back, recovery_action
):
    control = tmp_path / "control"
    monkeypatch.setenv("FAKE_NVML_CONTROL", str(control))
    fake_nvml.set(1, recovery_action=1)
    fake_nvml.set_processes(1, [31337])
    fake_nvml.set_reset_outcome(1, outcome)
    command = FakeNvml.reset_command(control).replace("{gpu}", "1")
    subprocess.run(["/bin/sh", "-c", command], check=True)
    # Nothing happens until NVML is opened again, as a driver finds a reset GPU again.
    assert fake_nvml.resets(1) == 0
    with nvml.open_nvml(backend=backend) as session:
        after = session.sample()[1]
        assert fake_nvml.resets(1) == 1
        assert (after.status == nvml.Return.SUCCESS) is back
        assert after.recovery_action == recovery_action
        if back:
            pids = [p.pid for p in session.running_processes(1)]
            assert pids == ([] if outcome == "clean" else [31337])
    assert not control.exists()


def test_an_unknown_reset_outcome_is_refused(fake_nvml):
    with pytest.raises(ValueError, match="clean, fails, lost"):
        fake_nvml.set_reset_outcome(0, "maybe")
