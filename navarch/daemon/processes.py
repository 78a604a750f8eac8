"""The subprocesses a command runs: each in a process group of its own, recorded before it runs.

A drain command may start processes of its own, and the daemon may be killed while they run (by
the OOM killer, say). Each subprocess therefore starts a new session, whose process group holds
everything it starts, and the group's id goes into the daemon state before the subprocess runs
anything: the subprocess first waits on a gate, a line on its standard input, that the daemon
writes only once the state is saved. A daemon that dies before opening the gate closes the pipe,
and the subprocess exits without running. When the command ends, times out or is cancelled, the
whole group ends with it; a restarted daemon ends a group that outlived its daemon
(`end_leftover`).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import trio
from attrs import frozen

from navarch.daemon.nodelog import NodeLog
from navarch.daemon.state import DaemonState, Running

# How long a process group has to exit after SIGTERM before it gets SIGKILL.
GRACE = 5.0
# Output kept of each stream; a command's message is made of the end of it.
KEEP_OUTPUT = 64 * 1024
# Enough of a failing command's output to say why, short enough for a table cell and an event.
MESSAGE_LIMIT = 500
# Waits for one line on standard input, then runs the command with /dev/null as its input.
_GATE = 'read -r _ || exit 125; exec "$@" </dev/null'
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@frozen
class Finished:
    returncode: int
    stdout: bytes
    stderr: bytes

    def tail(self) -> str:
        """The end of stderr (or of stdout when stderr is empty), on one line."""
        return output_tail(self.stderr) or output_tail(self.stdout)

    def status(self) -> str:
        """How it ended, for a message: "exited with status 3", "was killed by signal 9"."""
        if self.returncode < 0:
            return f"was killed by signal {-self.returncode}"
        return f"exited with status {self.returncode}"


def output_tail(data: bytes) -> str:
    lines = data.decode("utf-8", "replace").splitlines()
    text = " | ".join(line.strip() for line in lines if line.strip())
    if len(text) > MESSAGE_LIMIT:
        text = "..." + text[-(MESSAGE_LIMIT - 3) :]
    return text


def boot_id() -> str:
    """The kernel's id of this boot; empty where the system does not say."""
    try:
        return _BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        return ""


class CommandProcesses:
    """Runs the subprocesses of commands, recording each one's process group in the state."""

    def __init__(self, state: DaemonState, log: NodeLog, grace: float = GRACE) -> None:
        self._state = state
        self._log = log
        self._grace = grace

    async def run(self, argv: Sequence[str], env: Mapping[str, str]) -> Finished:
        """Runs `argv` to the end; cancelling ends its whole process group.

        Raises OSError when it cannot start.
        """
        process = await trio.lowlevel.open_process(
            ["/bin/sh", "-c", _GATE, "navarch-command", *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            start_new_session=True,
        )
        group = process.pid
        stdout, stderr = bytearray(), bytearray()
        try:
            assert process.stdin is not None
            assert process.stdout is not None
            assert process.stderr is not None
            await self._state.process_started(group, boot_id())
            async with process.stdin:
                await process.stdin.send_all(b"run\n")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_collect, process.stdout, stdout)
                nursery.start_soon(_collect, process.stderr, stderr)
                await process.wait()
        finally:
            with trio.CancelScope(shield=True):
                # Whatever the command left behind in its group ends with it.
                await end_group(group, self._grace)
                returncode = await process.wait()
        return Finished(returncode, bytes(stdout), bytes(stderr))

    async def end_leftover(self, running: Running) -> bool:
        """Ends what is left of a command's process group after a daemon restart.

        Returns whether anything was left. A group recorded in another boot is long gone, and
        its number may be another program's now, so it is left alone.
        """
        group = running.process_group
        if not group or not running.boot_id or running.boot_id != boot_id():
            return False
        if not group_alive(group):
            return False
        self._log.warning(
            "command %s left processes running (process group %d); ending them",
            running.command_id,
            group,
        )
        await end_group(group, self._grace)
        return True


async def end_group(group: int, grace: float) -> None:
    """SIGTERM to every process of the group, then SIGKILL to those left after `grace`."""
    if not _signal(group, signal.SIGTERM):
        return
    with trio.move_on_after(grace):
        while group_alive(group):
            await trio.sleep(0.05)
        return
    _signal(group, signal.SIGKILL)


def group_alive(group: int) -> bool:
    """Whether the process group has a process that is not a zombie."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # Its processes are another user's now (a command that ran sudo): not ours to end.
        return False
    return _has_live_member(group)


def _has_live_member(group: int) -> bool:
    """Reads /proc, because a signal reaches a zombie that nobody reaped yet too."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...", where comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(group) and fields[0] != "Z":
            return True
    return False


def _signal(group: int, signum: signal.Signals) -> bool:
    try:
        os.killpg(group, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


async def _collect(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
    async for chunk in stream:
        into += chunk
        if len(into) > KEEP_OUTPUT:
            del into[: len(into) - KEEP_OUTPUT]
