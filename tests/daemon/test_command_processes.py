"""A command's processes: their own process group, recorded first, ended with the command or
after a daemon restart; and command parameters out of range."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import trio
from support.api import rpc
from support.navarch_process import REPO
from support.service import DAEMON_SERVER, open_service
from support.serving import JOIN_TOKEN, serving
from test_agent import CountingDrain, command, issue, make_daemon

from navarch.api import wire as m
from navarch.api.inprocess import InProcessClient
from navarch.controlplane import Caller
from navarch.daemon.agent import Daemon
from navarch.daemon.commands import INTERRUPTED
from navarch.daemon.config import DaemonConfig
from navarch.daemon.drain import ShellDrain
from navarch.daemon.gpu import SimulatedGpus
from navarch.daemon.nodelog import NodeLog
from navarch.daemon.processes import CommandProcesses, boot_id, group_alive
from navarch.daemon.state import STATE_FILE, DaemonState, Running

DRAIN = m.CommandType.COMMAND_TYPE_DRAIN
FAILED = m.CommandStatus.COMMAND_STATUS_FAILED


async def wait_until(what: str, check, timeout: float = 20.0):
    """Waits in real time: real processes and threads do not follow the mock clock."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await trio.sleep(0.05)
    return found


def spawn_group(*argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, start_new_session=True)


async def test_the_process_group_is_saved_before_the_command_runs(tmp_path):
    state = DaemonState(tmp_path)
    await state.begin("cmd-1")
    processes = CommandProcesses(state, NodeLog("gpu-1"))
    script = f'cat "{tmp_path / STATE_FILE}"; echo; echo $$; ps -o pgid= -p $$'
    done = await processes.run(["/bin/sh", "-c", script], dict(os.environ))
    *saved, pid, pgid = done.stdout.decode().strip().splitlines()
    running = json.loads("\n".join(saved))["running"]
    assert running == {"id": "cmd-1", "process_group": int(pid), "boot_id": boot_id()}
    assert int(pgid) == int(pid) != os.getpgid(0)


async def test_a_timed_out_drain_ends_every_process_it_started(tmp_path):
    pids = tmp_path / "pids"
    drain = ShellDrain(f"sleep 1000 & echo $! > {pids}; sleep 1000")
    outcome = await drain(0.5, {})
    assert not outcome.ok and "timed out" in outcome.message
    # The background sleep was in the drain's process group, so it ended too.
    background = int(pids.read_text())
    await wait_until("the background process to end", lambda: not _running(background))


async def test_a_leftover_of_another_boot_is_left_alone(tmp_path):
    leftover = spawn_group("sleep", "1000")
    try:
        processes = CommandProcesses(DaemonState(), NodeLog("gpu-1"), grace=0.5)
        other_boot = Running("cmd-1", leftover.pid, "another-boot")
        assert not await processes.end_leftover(other_boot)
        assert group_alive(leftover.pid)
        assert await processes.end_leftover(Running("cmd-1", leftover.pid, boot_id()))
        assert leftover.wait(5) == -signal.SIGTERM
    finally:
        leftover.kill()
        leftover.wait()


@pytest.mark.parametrize(
    ("timeout", "problem"),
    [
        ("99999999999d", "expected a duration more than 0s and at most 7d"),
        ("30d", "expected a duration more than 0s and at most 7d"),
        ("0s", "expected a duration more than 0s and at most 7d"),
        ("-5m", "expected a duration such as"),
        ("soon", "expected a duration such as"),
    ],
)
async def test_a_drain_timeout_out_of_range_fails_the_drain_naming_it(
    tmp_path, autojump_clock, caplog, timeout, problem
):
    async with open_service(tmp_path / "n.db", DAEMON_SERVER) as service:
        drain = CountingDrain()
        daemon = make_daemon(InProcessClient(service, Caller.node("gpu-1")), drain=drain)
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            issued = await issue(service, DRAIN, parameters={"timeout": timeout})
            await trio.sleep(5)
            daemon.stop()
        done = await command(service, issued.command_id)
        assert done.status is FAILED
        assert done.result_message.startswith("drain: parameters.timeout: ")
        assert problem in done.result_message
        assert drain.runs == []
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_a_daemon_killed_during_a_drain_is_not_run_twice(tmp_path):
    """A real `navarch daemon` is killed with SIGKILL while its drain command runs; the next
    daemon on the same state directory ends the drain's processes and reports it failed."""
    pids = tmp_path / "pids"
    config = DaemonConfig(
        node_id="gpu-1",
        drain_command=f"echo $$ >> {pids}; sleep 1000",
        state_dir=str(tmp_path / "state"),
    )
    (tmp_path / "navarch.toml").write_text(
        f'[daemon]\ndrain_command = "{config.drain_command}"\nstate_dir = "{config.state_dir}"\n'
    )
    async with serving(tmp_path / "n.db", join_token=JOIN_TOKEN) as (http, service):
        first = await trio.lowlevel.open_process(
            [
                *(sys.executable, "-m", "navarch", "daemon", "--simulated-gpus", "1"),
                *("--node-id", "gpu-1", "--control-plane", str(http.base_url)),
                *("--config", str(tmp_path / "navarch.toml")),
            ],
            env={**os.environ, "NAVARCH_JOIN_TOKEN": JOIN_TOKEN},
            cwd=REPO,
        )
        try:
            await wait_until("the daemon to register", lambda: service.book.get("gpu-1"), 30)
            issued = await issue(service, DRAIN)
            await wait_until("the drain command to start", pids.exists)
            group = int(pids.read_text())
        finally:
            first.kill()
            await first.wait()
        assert group_alive(group)

        second = Daemon(
            InProcessClient(service, Caller.anonymous()),
            SimulatedGpus(1, seed="gpu-1"),
            config,
            state=DaemonState(config.state_dir),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(second.run)
            assert not group_alive(group)
            finished = await wait_until(
                "the drain to be acknowledged",
                lambda: service.commands.queue.find(issued.command_id) is None,
            )
            assert finished
            second.stop()
        done = (await rpc(service, m.GetCommandRequest(command_id=issued.command_id))).command
        assert done.status is FAILED
        assert done.result_message.startswith(INTERRUPTED)
        assert "processes it left running were ended" in done.result_message
        assert len(pids.read_text().splitlines()) == 1


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
