"""The `[server]` limits of a real control plane over loopback: slow clients are cut off, and
connections beyond the cap wait until one closes."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.control_plane_process import control_plane_process
from support.fleet import free_port

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: navarch\r\n\r\n"
RPC = b"POST /navarch.v1.ControlPlaneService/ListNodes HTTP/1.1\r\nHost: navarch\r\n"


@pytest.fixture
def address(tmp_path: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    config = tmp_path / "navarch.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:{port}"\nheader_timeout = "{HEADER_TIMEOUT:g}s"\n'
        f'body_timeout = "{BODY_TIMEOUT:g}s"\nmax_connections = 2\n'
    )
    env = {"NAVARCH_ADMIN_TOKEN": "", "NAVARCH_JOIN_TOKEN": ""}
    with control_plane_process("--config", str(config), "--data-dir", str(tmp_path), env=env):
        yield "127.0.0.1", port


def test_connections_beyond_the_cap_wait_until_one_closes(address: tuple[str, int]) -> None:
    held = [socket.create_connection(address, timeout=5) for _ in range(2)]
    extra = socket.create_connection(address, timeout=0.5)
    try:
        extra.sendall(HEALTHZ)
        with pytest.raises(TimeoutError):
            extra.recv(100)
        held[0].close()
        extra.settimeout(HEADER_TIMEOUT / 2)
        assert extra.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        for sock in [*held, extra]:
            sock.close()


def test_slow_headers_and_slow_bodies_are_answered_408_and_closed(
    address: tuple[str, int],
) -> None:
    slow_headers = socket.create_connection(address, timeout=5)
    slow_body = socket.create_connection(address, timeout=5)
    try:
        started = time.monotonic()
        slow_headers.sendall(RPC[:30])
        slow_body.sendall(RPC + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{}")
        for sock, timeout in ((slow_headers, HEADER_TIMEOUT), (slow_body, BODY_TIMEOUT)):
            answer = _read_to_end(sock)
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert timeout * 0.9 <= time.monotonic() - started < timeout + 3
    finally:
        slow_headers.close()
        slow_body.close()


def test_a_keep_alive_connection_is_not_cut_between_requests(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(HEALTHZ)
        assert _read_health(sock).startswith(b"HTTP/1.1 200")
        time.sleep(HEADER_TIMEOUT + 0.5)  # idle past the header deadline
        sock.sendall(HEALTHZ)
        assert _read_health(sock).startswith(b"HTTP/1.1 200")


def test_a_long_poll_outlasts_the_header_and_body_deadlines(address: tuple[str, int]) -> None:
    url = "http://{}:{}/navarch.v1.ControlPlaneService".format(*address)
    with httpx.Client(timeout=10) as client:
        client.post(f"{url}/RegisterNode", json={"nodeId": "n1"}).raise_for_status()
        started = time.monotonic()
        wait = f"{HEADER_TIMEOUT + 1:g}s"
        reply = client.post(f"{url}/GetNodeCommands", json={"nodeId": "n1", "wait": wait})
    assert reply.status_code == 200, reply.text
    assert time.monotonic() - started >= HEADER_TIMEOUT + 1


def _read_health(sock: socket.socket) -> bytes:
    """The whole answer of /healthz, whose body is `ok`."""
    data = b""
    while not data.endswith(b"ok\n"):
        data += sock.recv(1000)
    return data


def _read_to_end(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(1000):
        data += chunk
    return data
