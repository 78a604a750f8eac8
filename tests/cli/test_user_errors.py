"""Every failure a user can cause prints one `navarch: ...` line that says what to do, never a
traceback; each case runs the real command in a subprocess."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.control_plane_process import control_plane_process
from support.fleet import free_port
from support.navarch_process import run_navarch

NO_TOKENS = {"NAVARCH_ADMIN_TOKEN": "", "NAVARCH_JOIN_TOKEN": ""}


def one_line(done: subprocess.CompletedProcess[str], status: int) -> str:
    """The one error line of a finished command, after checking its exit status."""
    lines = [line for line in done.stderr.splitlines() if not line[:4].isdigit()]  # log lines
    assert done.returncode == status, done.stderr
    assert len(lines) == 1 and lines[0].startswith("navarch: "), done.stderr
    return lines[0]


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("command", [["control-plane"], ["sim", "interactive"]])
def test_a_port_in_use(command: list[str], taken_port: int, tmp_path: Path) -> None:
    listen = f"127.0.0.1:{taken_port}"
    env = {**NO_TOKENS, "XDG_DATA_HOME": str(tmp_path)}
    line = one_line(run_navarch(*command, "--listen", listen, env=env), 1)
    assert f"cannot listen on {listen}" in line and "--listen" in line, line


def test_a_data_dir_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    data_dir = tmp_path / "file" / "navarch"
    done = run_navarch(
        "control-plane", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(data_dir)
    )
    line = one_line(done, 1)
    assert str(data_dir) in line and "--data-dir" in line, line


def test_a_store_held_by_another_control_plane(tmp_path: Path) -> None:
    args = ("--data-dir", str(tmp_path))
    with control_plane_process("--listen", f"127.0.0.1:{free_port()}", *args, env=NO_TOKENS):
        done = run_navarch("control-plane", "--listen", f"127.0.0.1:{free_port()}", *args)
    assert "in use" in one_line(done, 1)


@pytest.mark.parametrize("token", ["wrong-token", ""])
def test_a_daemon_refused_registration(token: str, tmp_path: Path) -> None:
    env = {"NAVARCH_ADMIN_TOKEN": "admin-token", "NAVARCH_JOIN_TOKEN": "join-token"}
    listen = f"127.0.0.1:{free_port()}"
    with control_plane_process("--listen", listen, "--data-dir", str(tmp_path), env=env) as (
        _,
        url,
        _,
    ):
        done = run_navarch(
            "daemon",
            "--simulated-gpus",
            "1",
            "--node-id",
            "gpu-1",
            "--control-plane",
            url,
            env={"NAVARCH_JOIN_TOKEN": token},
            timeout=30,
        )
    line = one_line(done, 1)
    assert "refused to register node gpu-1" in line, line
    assert line.endswith(
        "pass the control plane's join token with --join-token or NAVARCH_JOIN_TOKEN"
    )


def test_a_listen_address_without_a_port(tmp_path: Path) -> None:
    done = run_navarch("control-plane", "--listen", "127.0.0.1", "--data-dir", str(tmp_path))
    assert "HOST:PORT" in one_line(done, 2)
