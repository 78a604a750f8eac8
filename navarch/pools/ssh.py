"""Setting up a new machine over SSH, where the cloud cannot run cloud-init for navarch.

The OpenSSH client runs as a subprocess, one connection per step, with no configuration but the
options given here. A first connection runs `true` and is retried while the machine boots
(connection refused, timed out, the key not yet authorized); each step then runs as a script fed
to `sh -s` on its standard input, so that neither its length nor its quoting matters and no
secret in it reaches a command line. Host keys are checked strictly against the instance's own
known_hosts file: the keys the provider reported, or else the key that the first connection
recorded (trust on first use), which the outcome hands back for the caller to keep.

ssh's own messages go to a log file of their own (`-E`), so that its failure, which it reports as
exit status 255, is told apart from a remote command that exits with 255. The one message that
ssh writes to standard error instead, a connection closed by the remote host, is looked for at
the end of the output.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import trio
from attrs import frozen

from navarch.durations import format_duration

# Connecting again after a failed attempt waits this long at first, doubling up to the maximum.
_FIRST_RETRY = 0.5
_MAX_RETRY = 5.0
# A connection whose server stops answering keepalives this often, three times over, is dropped.
_KEEPALIVE_S = 15
_TAIL_LINES = 40
_TAIL_CHARS = 4000
# Output kept while steps run; the tail is cut from it at the end.
_KEEP_OUTPUT = 64 * 1024
_STEP_NAME_CHARS = 60
_SSH_FAILED = 255
_KEY = re.compile(r"[A-Za-z0-9@._-]+ [A-Za-z0-9+/]+={0,3}")
_CLOSED = re.compile(r"(Connection to \S+ closed by remote host)\.\s*$")
_PRESENTED_KEY = re.compile(r"The fingerprint for the (\S+) key sent by the remote host is\s+(\S+)")
# What comes before the reason in ssh's messages: "ssh: connect to host H port P: Connection
# refused", "root@H: Permission denied (publickey).", "kex_exchange_identification: ...".
_ERROR_PREFIX = re.compile(r"^(ssh: connect to host \S+ port \d+: |\S+@\S+: |kex_\w+: |ssh: )")


@frozen(kw_only=True)
class SshTarget:
    """A machine to set up, and what it takes to log in to it."""

    # An IP address or host name, as the provider reported it.
    address: str
    port: int = 22
    user: str
    # The path of the private key.
    key_file: str
    # The path of this instance's own known_hosts file; it is written here.
    known_hosts: str
    # Public keys ("ssh-ed25519 AAAA...") that the provider reported or a first connection
    # recorded; when empty, the first connection trusts the key the machine presents.
    host_keys: tuple[str, ...] = ()


@frozen(kw_only=True)
class SetupOutcome:
    """How a setup ended."""

    ok: bool
    # Why, in one line: "setup succeeded", "command 2 of 3 (`systemctl start x`) exited with
    # status 1", "could not connect within the total timeout (5m): Connection refused".
    detail: str
    # The last lines of the steps' output, standard output and error together.
    log_tail: str
    # The host keys trusted now, those recorded on first use included, for the caller to keep.
    host_keys: tuple[str, ...]


async def run_setup(
    target: SshTarget,
    steps: Sequence[str],
    *,
    connect_timeout: float,
    command_timeout: float,
    total_timeout: float,
    ssh: str = "ssh",
) -> SetupOutcome:
    """Runs `steps` in order on the machine, each a shell script, and stops at the first failure.

    Each connection attempt has `connect_timeout` seconds, each step `command_timeout` seconds,
    and the whole setup, connecting included, `total_timeout` seconds.
    """
    workdir = Path(await trio.to_thread.run_sync(tempfile.mkdtemp, None, "navarch-ssh-"))
    session = _Session(target, ssh, connect_timeout, total_timeout, workdir / "ssh.log")
    try:
        with trio.move_on_after(total_timeout) as total:
            try:
                ok, detail = await _setup(session, steps, command_timeout)
            except OSError as exc:
                ok, detail = False, f"could not run {ssh}: {exc}"
        if total.cancelled_caught:
            ok, detail = False, session.stage
        trusted = target.host_keys or await _recorded_keys(target.known_hosts)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(shutil.rmtree, workdir, True)
    return SetupOutcome(ok=ok, detail=detail, log_tail=session.tail(), host_keys=trusted)


async def _setup(
    session: _Session, steps: Sequence[str], command_timeout: float
) -> tuple[bool, str]:
    target = session.target
    if not await trio.Path(target.key_file).is_file():
        return False, f"the key file {target.key_file} does not exist"
    for n, key in enumerate(target.host_keys, 1):
        if not _KEY.fullmatch(key.strip()):
            return False, f"host key {n} is not an OpenSSH public key ('type base64')"
    try:
        if target.host_keys:
            lines = "".join(f"{_known_host(target)} {key.strip()}\n" for key in target.host_keys)
            await _write(target.known_hosts, lines)
        elif not await trio.Path(target.known_hosts).exists():
            await _write(target.known_hosts, "")
    except OSError as exc:
        return False, f"could not write the known_hosts file: {exc}"
    failure = await _connect(session, first_use=not target.host_keys)
    if failure:
        return False, failure
    for n, step in enumerate(steps, 1):
        name = f"command {n} of {len(steps)} (`{_first_line(step)}`)"
        session.stage = f"{name} was still running at the total timeout ({session.total_timeout})"
        with trio.move_on_after(command_timeout) as scope:
            status, error = await session.run("sh -s", step.encode(), strict="yes")
        if scope.cancelled_caught:
            timeout = _seconds(command_timeout)
            return False, f"{name} timed out after the command timeout ({timeout})"
        if error:
            failure = _host_key_failure(target, error) or f"ssh failed: {_reason(error)}"
            return False, f"{name}: {failure}"
        if status:
            return False, f"{name} exited with status {status}"
    return True, "setup succeeded"


async def _connect(session: _Session, *, first_use: bool) -> str:
    """Connects until a `true` runs; returns why it cannot, or "" once it did."""
    delay = _FIRST_RETRY
    while True:
        with trio.move_on_after(session.connect_timeout) as scope:
            status, error = await session.run(
                "true", b"", strict="accept-new" if first_use else "yes"
            )
        if scope.cancelled_caught:
            error = f"no answer within the connect timeout ({_seconds(session.connect_timeout)})"
        elif not error:
            if status:
                return f"logged in, but `true` exited with status {status}"
            return ""
        mismatch = _host_key_failure(session.target, error)
        if mismatch:
            return mismatch
        session.stage = (
            f"could not connect within the total timeout ({session.total_timeout}): "
            + _reason(error)
        )
        await trio.sleep(delay)
        delay = min(delay * 2, _MAX_RETRY)


class _Session:
    """Runs commands on the target, one ssh process each, and keeps their output."""

    def __init__(
        self, target: SshTarget, ssh: str, connect_timeout: float, total_timeout: float, log: Path
    ) -> None:
        self.target = target
        self.connect_timeout = connect_timeout
        self.total_timeout = _seconds(total_timeout)
        # The detail should the total timeout end the setup now.
        self.stage = f"could not connect within the total timeout ({self.total_timeout})"
        self._log = log
        self._output = bytearray()
        self._argv = [
            ssh,
            "-F",
            "/dev/null",
            "-E",
            str(log),
            "-i",
            target.key_file,
            "-p",
            str(target.port),
            "-l",
            target.user,
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={max(1, math.ceil(connect_timeout))}",
            "-o",
            f"ServerAliveInterval={_KEEPALIVE_S}",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={target.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
        ]

    async def run(self, command: str, script: bytes, *, strict: str) -> tuple[int, str]:
        """Runs `command` with `script` on its standard input; returns its exit status and ssh's
        own error messages, empty unless ssh itself failed. Cancelling kills the ssh process.

        Raises OSError when ssh cannot start.
        """
        await trio.Path(self._log).write_bytes(b"")
        argv = [
            *self._argv,
            "-o",
            f"StrictHostKeyChecking={strict}",
            "--",
            self.target.address,
            command,
        ]
        process = await trio.lowlevel.open_process(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            assert process.stdin is not None
            assert process.stdout is not None
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_send, process.stdin, script)
                nursery.start_soon(self._collect, process.stdout)
                status = await process.wait()
        finally:
            # Not yet reaped, the process still owns its group's id.
            if process.returncode is None:
                with trio.CancelScope(shield=True):
                    os.killpg(process.pid, signal.SIGKILL)
                    await process.wait()
        if status != _SSH_FAILED:
            return status, ""
        error = (await trio.Path(self._log).read_text(errors="replace")).strip()
        if not error:
            closed = _CLOSED.search(self._output[-400:].decode(errors="replace"))
            error = closed.group(1) if closed else ""
        return status, error

    def tail(self) -> str:
        text = self._output.decode(errors="replace")
        return "\n".join(text.splitlines()[-_TAIL_LINES:])[-_TAIL_CHARS:]

    async def _collect(self, stream: trio.abc.ReceiveStream) -> None:
        async for chunk in stream:
            self._output += chunk
            if len(self._output) > _KEEP_OUTPUT:
                del self._output[: len(self._output) - _KEEP_OUTPUT]


async def _send(stream: trio.abc.SendStream, data: bytes) -> None:
    """Writes `data` and closes the stream; an ssh that exits before reading it all is fine."""
    async with stream:
        try:
            if data:
                await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


def _host_key_failure(target: SshTarget, error: str) -> str:
    """The detail of a host key mismatch in ssh's messages; empty when there is none."""
    if "Host key verification failed" not in error:
        return ""
    presented = _PRESENTED_KEY.search(error)
    if presented:
        key_type, fingerprint = presented.groups()
        return (
            f"host key mismatch: {target.address} presented the {key_type} key"
            f" {fingerprint.rstrip('.')}, which is not a trusted one"
        )
    return f"host key mismatch: {_reason(error)}"


def _reason(error: str) -> str:
    """The last of ssh's messages, without the host and program names before it."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    return _ERROR_PREFIX.sub("", lines[-1]).rstrip(".") if lines else "ssh failed"


def _known_host(target: SshTarget) -> str:
    return target.address if target.port == 22 else f"[{target.address}]:{target.port}"


async def _recorded_keys(known_hosts: str) -> tuple[str, ...]:
    """The keys in the instance's known_hosts file, without the host names."""
    try:
        text = await trio.Path(known_hosts).read_text(errors="replace")
    except OSError:
        return ()
    keys = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not fields[0].startswith(("#", "@")):
            keys.append(f"{fields[1]} {fields[2]}")
    return tuple(keys)


async def _write(path: str, text: str) -> None:
    await trio.Path(path).parent.mkdir(parents=True, exist_ok=True)
    await trio.Path(path).write_text(text)


def _first_line(step: str) -> str:
    """A short name for a step: its first line that is not blank or a comment."""
    lines = [line.strip() for line in step.splitlines()]
    line = next((line for line in lines if line and not line.startswith("#")), "")
    if len(line) > _STEP_NAME_CHARS:
        return line[: _STEP_NAME_CHARS - 1] + "…"
    return line


def _seconds(value: float) -> str:
    return format_duration(timedelta(seconds=value))
