"""A real OpenSSH server on loopback, for the tests of setup over SSH.

It runs as the current user, with a host key and a client key generated for it. Where
/usr/sbin/sshd is absent the tests that use it skip, unless NAVARCH_REQUIRE_SSHD=1 (CI) makes
that a failure.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
from attrs import frozen

from navarch.pools.ssh import SshTarget

SSHD = Path("/usr/sbin/sshd")
# sshd refuses to start without its privilege separation directory.
PRIVSEP_DIR = Path("/run/sshd")


@frozen(kw_only=True)
class Sshd:
    port: int
    user: str
    # "ssh-ed25519 AAAA...", the server's public host key.
    host_key: str
    client_key: Path
    # sshd's own log (`-e`), for a failing test's report.
    log: Path

    def target(self, known_hosts: Path, host_keys: tuple[str, ...] = ()) -> SshTarget:
        return SshTarget(
            address="127.0.0.1",
            port=self.port,
            user=self.user,
            key_file=str(self.client_key),
            known_hosts=str(known_hosts),
            host_keys=host_keys,
        )


def require_sshd() -> None:
    """Skips the test where there is no sshd to run, or fails it where CI requires one."""
    if SSHD.exists():
        return
    reason = f"{SSHD} is not installed (openssh-server)"
    if os.environ.get("NAVARCH_REQUIRE_SSHD") == "1":
        pytest.fail(f"NAVARCH_REQUIRE_SSHD=1, but {reason}")
    pytest.skip(reason)


def free_port() -> int:
    """A loopback port that nothing listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def generate_key(path: Path, key_type: str = "ed25519") -> str:
    """Writes a new key pair at `path` and `path`.pub; returns the public key."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", "", "-f", str(path)], check=True
    )
    return " ".join(path.with_name(path.name + ".pub").read_text().split()[:2])


def fingerprint(public_key: str) -> str:
    """The SHA256 fingerprint of a public key, as ssh shows it."""
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", "-"],
        input=public_key,
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.split()[1]


@contextmanager
def running_sshd(
    directory: Path, timeout: float = 10, env: Mapping[str, str] | None = None
) -> Iterator[Sshd]:
    """Starts sshd on a free loopback port with its files in `directory`, waits until it
    listens, and stops it at the end. `env` is set in every session (sshd's SetEnv), so a test
    can make the sessions see a machine of its own."""
    require_sshd()
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    host_key = generate_key(directory / "host_key")
    client_key = directory / "client_key"
    authorized = directory / "authorized_keys"
    authorized.write_text(generate_key(client_key) + "\n")
    config = directory / "sshd_config"
    config.write_text(
        "ListenAddress 127.0.0.1\n"
        f"HostKey {directory / 'host_key'}\n"
        f"AuthorizedKeysFile {authorized}\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "StrictModes no\n"
        "PidFile none\n"
        # sshd keeps the first SetEnv line alone: every variable goes on one.
        + ("SetEnv " + " ".join(f'"{k}={v}"' for k, v in env.items()) + "\n" if env else "")
    )
    port = free_port()
    log = directory / "sshd.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(config), "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    try:
        _wait_listening(process, port, log, timeout)
        yield Sshd(
            port=port,
            user=pwd.getpwuid(os.getuid()).pw_name,
            host_key=host_key,
            client_key=client_key,
            log=log,
        )
    finally:
        process.terminate()
        process.wait(timeout=timeout)


def _wait_listening(process: subprocess.Popen[bytes], port: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"sshd exited with status {process.returncode}:\n{log.read_text()}"
            )
        if f"port {port}" in log.read_text(errors="replace"):
            return
        time.sleep(0.02)
    raise AssertionError(
        f"sshd did not listen on port {port} within {timeout}s:\n{log.read_text()}"
    )
