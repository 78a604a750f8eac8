"""The `dcgm` and `nccl` checks' on-demand diagnostics, through fake dcgmi and benchmark scripts,
and a run_diagnostic command through the daemon."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
import trio
from support.health_policy import judge_each
from support.service import RUN_DIAGNOSTIC, issue

from navarch.api import wire as m
from navarch.api.inprocess import InProcessClient
from navarch.controlplane import Caller
from navarch.daemon.agent import Daemon
from navarch.daemon.config import DaemonConfig
from navarch.daemon.gpu import SimulatedGpus
from navarch.health import Action, Result
from navarch.model import HealthEventType as T
from navarch.plugins.builtin.health_checks import (
    DcgmCheck,
    DcgmCheckSettings,
    NcclCheck,
    NcclCheckSettings,
)
from navarch.plugins.builtin.health_checks.dcgm import parse_diag

DATA = Path(__file__).parent / "data" / "dcgm"
NO_HOST_ENGINE = (
    "Error: unable to establish a connection to the specified host: localhost\n"
    "Error: Unable to connect to host engine. Host engine connection invalid/disconnected.\n"
)


class FakeDcgmi:
    """A dcgmi that prints what the test last set and records its arguments; `hang` makes it
    start a child and wait, as a stuck diagnostic does."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "dcgmi"
        self.path.write_text(
            "#!/bin/sh\n"
            'here="$(dirname "$0")"\n'
            'echo "$@" > "$here/args"\n'
            'if [ -f "$here/hang" ]; then\n'
            '  sleep 600 & echo $! > "$here/child"\n'
            "  wait\n"
            "fi\n"
            'cat "$here/stdout"\n'
            'cat "$here/stderr" >&2\n'
            'exit "$(cat "$here/status")"\n'
        )
        self.path.chmod(0o755)
        self.set(stdout=(DATA / "diag-4-pass.json").read_text())

    def set(self, *, stdout: str = "", stderr: str = "", status: int = 0) -> None:
        (self.directory / "stdout").write_text(stdout)
        (self.directory / "stderr").write_text(stderr)
        (self.directory / "status").write_text(str(status))

    def hang(self) -> None:
        (self.directory / "hang").write_text("")

    @property
    def args(self) -> list[str]:
        return (self.directory / "args").read_text().split()


def dcgm(fake: FakeDcgmi, **settings) -> DcgmCheck:
    return DcgmCheck(DcgmCheckSettings(dcgmi=str(fake.path), **settings))


def results(diagnosis) -> list[tuple[str, int, str]]:
    return [(e.details["test"], e.gpu_index, e.details["result"]) for e in diagnosis.events]


async def test_dcgm_4_results_become_one_event_per_test_and_gpu(tmp_path):
    fake = FakeDcgmi(tmp_path)
    diagnosis = await dcgm(fake, level=2).diagnose(None)
    assert fake.args == ["diag", "-r", "2", "-j"]
    assert diagnosis.ok
    assert diagnosis.summary == "dcgm level 2: 3 passed, 1 warned"
    assert results(diagnosis) == [
        ("software", 0, "pass"),
        ("software", 1, "pass"),
        ("memory", 0, "pass"),
        ("memory", 1, "warn"),
    ]
    warned = diagnosis.events[-1]
    assert warned.type is T.DIAGNOSTIC
    assert "Thermal violations totaling 2.5 seconds" in warned.message
    assert warned.details["level"] == "2"


async def test_a_failed_dcgm_3_test_fails_the_diagnostic(tmp_path):
    fake = FakeDcgmi(tmp_path)
    # dcgmi exits non-zero when a test fails, and prints its JSON after other lines.
    fake.set(stdout=(DATA / "diag-3.json").read_text(), status=226)
    diagnosis = await dcgm(fake).diagnose(3)
    assert fake.args == ["diag", "-r", "3", "-j"]
    assert not diagnosis.ok
    assert diagnosis.summary == (
        "dcgm level 3: 3 passed, 1 failed, 2 skipped; GPU Memory failed on GPU 1: "
        "Error using CUDA API cudaMalloc; GPU 1 has uncorrectable memory errors"
    )
    # A test of every GPU at once is about the machine; skipped tests are left out.
    assert results(diagnosis) == [
        ("Denylist", -1, "pass"),
        ("Persistence Mode", -1, "pass"),
        ("GPU Memory", 0, "pass"),
        ("GPU Memory", 1, "fail"),
    ]


async def test_the_default_policy_replaces_on_a_failure_and_alerts_on_a_warning(tmp_path):
    fake = FakeDcgmi(tmp_path)
    fake.set(stdout=(DATA / "diag-3.json").read_text(), status=226)
    failed = (await dcgm(fake).diagnose(1)).events[-1]
    fake.set(stdout=(DATA / "diag-4-pass.json").read_text())
    passed, warned = (await dcgm(fake).diagnose(1)).events[-2:]
    judged = [(j.result, j.action, j.rule) for j in judge_each([failed, warned, passed])]
    assert judged[:2] == [
        (Result.UNHEALTHY, Action.REPLACE, "diagnostic-failed"),
        (Result.DEGRADED, Action.ALERT, "diagnostic-warned"),
    ]
    assert judged[2][0] is Result.HEALTHY


async def test_a_hung_diagnostic_is_killed_with_its_children_and_fails(tmp_path, mock_clock):
    fake = FakeDcgmi(tmp_path)
    fake.hang()
    check = dcgm(fake, timeout=timedelta(minutes=5))
    found = []

    async def diagnose() -> None:
        found.append(await check.diagnose(4))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(diagnose)
        child = tmp_path / "child"
        for _ in range(3000):
            if child.exists() and child.read_text().strip():
                break
            await _real_pause()
        mock_clock.jump(301)
    [diagnosis] = found
    assert not diagnosis.ok
    assert (
        diagnosis.summary
        == "dcgm level 4: dcgmi diag -r 4 did not finish within 300s; it was killed"
    )
    [event] = diagnosis.events
    assert (event.type, event.gpu_index, event.details["result"]) == (T.DIAGNOSTIC, -1, "fail")
    pid = int(child.read_text())
    for _ in range(3000):
        if not _alive(pid):
            break
        await _real_pause()
    assert not _alive(pid)


async def _real_pause() -> None:
    # The subprocess runs in real time; the mock clock stands still meanwhile.
    await trio.to_thread.run_sync(time.sleep, 0.01)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie waits for its parent (init, here) and holds no GPU.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def test_dcgm_not_installed_is_reported_once_and_fails_the_diagnostic(tmp_path):
    check = DcgmCheck(DcgmCheckSettings(dcgmi=str(tmp_path / "absent" / "dcgmi")))
    first = await check.diagnose(1)
    assert not first.ok
    assert first.summary.startswith("dcgm: DCGM is not installed:")
    [event] = first.events
    assert (event.type, event.details) == (T.CHECK_FAILED, {"check": "dcgm"})
    [judged] = judge_each(first.events)
    assert (judged.result, judged.rule) == (Result.DEGRADED, "check-failed")
    again = await check.diagnose(1)
    assert not again.ok
    assert again.events == ()


async def test_a_host_engine_that_does_not_answer_is_a_degraded_state_not_a_crash(tmp_path):
    fake = FakeDcgmi(tmp_path)
    fake.set(stderr=NO_HOST_ENGINE, status=255)
    check = dcgm(fake)
    first = await check.diagnose(1)
    assert not first.ok
    assert "host engine (nv-hostengine) does not answer" in first.summary
    assert [e.type for e in first.events] == [T.CHECK_FAILED]
    assert (await check.diagnose(1)).events == ()
    # Once DCGM works again, a later outage is news again.
    fake.set(stdout=(DATA / "diag-4-pass.json").read_text())
    assert (await check.diagnose(1)).ok
    fake.set(stderr=NO_HOST_ENGINE, status=255)
    assert [e.type for e in (await check.diagnose(1)).events] == [T.CHECK_FAILED]


async def test_a_disabled_dcgm_check_runs_nothing(tmp_path):
    fake = FakeDcgmi(tmp_path)
    assert await dcgm(fake, enabled=False).diagnose(1) is None
    assert not (tmp_path / "args").exists()


@pytest.mark.parametrize(
    "output",
    [
        "",
        "{not json",
        "[]",
        '{"other": {}}',
        '{"DCGM Diagnostic": {"test_categories": [null, {"tests": "x"}]}}',
        '{"DCGM GPU Diagnostic": {"runtime_error": "Unable to run diagnostic on GPU 0"}}',
    ],
)
def test_output_without_results_is_a_clear_error(output):
    with pytest.raises(ValueError) as caught:
        parse_diag(output)
    assert "\n" not in str(caught.value)


async def test_unreadable_output_fails_the_diagnostic_with_check_failed(tmp_path):
    fake = FakeDcgmi(tmp_path)
    fake.set(stdout='{"DCGM GPU Diagnostic": {"runtime_error": "no GPUs"}}', status=1)
    diagnosis = await dcgm(fake).diagnose(1)
    assert not diagnosis.ok
    assert diagnosis.summary == "dcgm level 1: could not read the output of dcgmi diag: no GPUs"
    assert [e.type for e in diagnosis.events] == [T.CHECK_FAILED]


NCCL_OUTPUT = """\
#       size         count      type   redop    root     time   algbw   busbw #wrong
  1073741824     268435456     float     sum      -1   4823.1  222.63  389.60      0
# Out of bounds values : 0 OK
# Avg bus bandwidth    : 390.031
"""


def nccl_command(tmp_path: Path, output: str, status: int = 0) -> str:
    script = tmp_path / "all_reduce_perf"
    (tmp_path / "nccl-out").write_text(output)
    script.write_text(f'#!/bin/sh\ncat "$(dirname "$0")/nccl-out"\nexit {status}\n')
    script.chmod(0o755)
    return f"{script} -b 1G -e 1G -g 8"


async def test_nccl_bus_bandwidth_below_the_minimum_fails(tmp_path):
    command = nccl_command(tmp_path, NCCL_OUTPUT)
    passed = await NcclCheck(
        NcclCheckSettings(command=command, min_bus_bandwidth_gbps=350)
    ).diagnose(None)
    assert passed.ok and passed.summary == "nccl: bus bandwidth 390.031 GB/s"
    failed = await NcclCheck(
        NcclCheckSettings(command=command, min_bus_bandwidth_gbps=400)
    ).diagnose(None)
    assert not failed.ok
    [event] = failed.events
    assert (event.type, event.details["result"], event.metrics["bus_bandwidth_gbps"]) == (
        T.DIAGNOSTIC,
        "fail",
        390.031,
    )
    [judged] = judge_each(failed.events)
    assert judged.rule == "diagnostic-failed"


async def test_a_failing_or_silent_benchmark_fails_and_no_command_runs_nothing(tmp_path):
    failing = await NcclCheck(
        NcclCheckSettings(command=nccl_command(tmp_path, "", status=3))
    ).diagnose(None)
    assert not failing.ok and "exited with 3" in failing.summary
    silent = await NcclCheck(
        NcclCheckSettings(command=nccl_command(tmp_path, "# nothing\n"))
    ).diagnose(None)
    assert not silent.ok and "no '# Avg bus bandwidth' line" in silent.summary
    assert await NcclCheck(NcclCheckSettings()).diagnose(None) is None


async def diagnostic_through_the_daemon(
    control_plane, fake: FakeDcgmi, parameters: dict[str, str]
) -> m.Command:
    config = DaemonConfig(node_id="gpu-1")
    check = DcgmCheck(DcgmCheckSettings(dcgmi=str(fake.path), level=2))
    daemon = Daemon(
        InProcessClient(control_plane, Caller.node("gpu-1")),
        SimulatedGpus(2, seed="gpu-1"),
        config,
        health_checks=[("dcgm", check)],
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        command = (await issue(control_plane, "gpu-1", RUN_DIAGNOSTIC, **parameters)).command
        finished = await control_plane.commands.finished(command.command_id)
        daemon.stop()
    return finished


async def test_run_diagnostic_runs_the_configured_level_or_the_commands(
    control_plane, tmp_path, mock_clock
):
    fake = FakeDcgmi(tmp_path)
    configured = await diagnostic_through_the_daemon(control_plane, fake, {})
    assert fake.args == ["diag", "-r", "2", "-j"]
    assert configured.status.value == "succeeded"
    assert configured.result_message.startswith("dcgm level 2: 3 passed, 1 warned")
    node, _ = await control_plane.nodes.get("gpu-1")
    assert node.health.value == "degraded"  # the warning, judged by the policy


async def test_run_diagnostic_with_a_level_and_a_failure_fails_the_command(
    control_plane, tmp_path, mock_clock
):
    fake = FakeDcgmi(tmp_path)
    fake.set(stdout=(DATA / "diag-3.json").read_text(), status=226)
    failed = await diagnostic_through_the_daemon(control_plane, fake, {"level": "3"})
    assert fake.args == ["diag", "-r", "3", "-j"]
    assert failed.status.value == "failed"
    assert "GPU Memory failed on GPU 1" in failed.result_message


async def test_a_bad_level_fails_the_command_naming_the_parameter(
    control_plane, tmp_path, mock_clock
):
    fake = FakeDcgmi(tmp_path)
    bad = await diagnostic_through_the_daemon(control_plane, fake, {"level": "9"})
    assert bad.status.value == "failed"
    assert bad.result_message == "run_diagnostic: parameters.level: expected 1, 2, 3 or 4, got '9'"
    assert not (tmp_path / "args").exists()
