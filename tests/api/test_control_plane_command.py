from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from support.control_plane_process import control_plane_process

from navarch.api.wire import SERVICE_PATH
from navarch.store.schema import latest_version

pytestmark = pytest.mark.slow

NO_TOKENS = {"NAVARCH_ADMIN_TOKEN": "", "NAVARCH_JOIN_TOKEN": ""}
Navarch = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_it_serves_then_stops_cleanly_on_a_signal(tmp_path: Path, stop_signal: int) -> None:
    args = ("--listen", "127.0.0.1:0", "--data-dir", str(tmp_path))
    with control_plane_process(*args, env=NO_TOKENS) as (process, url, store):
        assert store == str(tmp_path / "navarch.db")
        assert httpx.get(f"{url}/healthz").text == "ok\n"
        registered = httpx.post(
            f"{url}{SERVICE_PATH}RegisterNode",
            json={"nodeId": "n1"},
            headers={"Content-Type": "application/json"},
        )
        assert registered.status_code == 200
        process.send_signal(stop_signal)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
    assert "Traceback" not in err
    conn = sqlite3.connect(store)
    assert conn.execute("SELECT node_id, status FROM nodes").fetchall() == [("n1", "active")]
    conn.close()


def test_without_a_data_dir_the_store_is_in_the_user_data_directory(tmp_path: Path) -> None:
    env = {**NO_TOKENS, "XDG_DATA_HOME": str(tmp_path / "data")}
    with control_plane_process("--listen", "127.0.0.1:0", env=env) as (_, _, store):
        assert store == str(tmp_path / "data" / "navarch" / "navarch.db")
        assert Path(store).exists()


def test_the_config_file_sets_the_listen_address_and_store(tmp_path: Path) -> None:
    config = tmp_path / "navarch.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:0"\nheartbeat_interval = "5s"\n\n'
        f'[store]\npath = "{tmp_path / "cp.db"}"\n'
    )
    with control_plane_process("--config", str(config), env=NO_TOKENS) as (_, url, store):
        assert store == str(tmp_path / "cp.db")
        registered = httpx.post(f"{url}{SERVICE_PATH}RegisterNode", json={"nodeId": "n1"})
        assert registered.json()["config"]["heartbeatInterval"] == "5s"


def test_a_non_loopback_address_without_tokens_is_refused(tmp_path: Path, navarch: Navarch) -> None:
    result = navarch(
        "control-plane", "--listen", "0.0.0.0:50999", "--data-dir", str(tmp_path), env=NO_TOKENS
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "navarch: refusing to listen on 0.0.0.0:50999 with auth off; set NAVARCH_ADMIN_TOKEN "
        "and NAVARCH_JOIN_TOKEN, or pass --insecure"
    )
    assert not (tmp_path / "navarch.db").exists()


def test_a_store_from_a_newer_navarch_stops_the_start(tmp_path: Path, navarch: Navarch) -> None:
    db = tmp_path / "navarch.db"
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT, applied_at TEXT)"
    )
    conn.execute("INSERT INTO schema_version VALUES (99, 'future.sql', 'later')")
    conn.commit()
    conn.close()
    result = navarch(
        "control-plane", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path), env=NO_TOKENS
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"navarch: {db}: the database has schema version 99, newer than this navarch knows "
        f"({latest_version()}); "
        "upgrade navarch, or point it at another data directory"
    )


def test_a_short_open_file_limit_caps_the_connections_and_says_so(tmp_path: Path) -> None:
    # 300 files leave 44 for clients; the 45th waits in the listen backlog instead of failing.
    program = ("prlimit", "--nofile=300:300", sys.executable, "-m", "navarch")
    args = ("--listen", "127.0.0.1:0", "--data-dir", str(tmp_path))
    with control_plane_process(*args, env=NO_TOKENS, program=program) as (process, url, _):
        host, port = url.removeprefix("http://").split(":")
        request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        clients = []
        try:
            for _ in range(44):
                client = socket.create_connection((host, int(port)), timeout=10)
                clients.append(client)
                client.sendall(request)
                assert client.recv(4096).startswith(b"HTTP/1.1 200 ")
            waiting = socket.create_connection((host, int(port)), timeout=10)
            clients.append(waiting)
            waiting.sendall(request)
            waiting.settimeout(0.5)
            with pytest.raises(TimeoutError):
                waiting.recv(4096)
            clients.pop(0).close()
            waiting.settimeout(10)
            assert waiting.recv(4096).startswith(b"HTTP/1.1 200 ")
        finally:
            for client in clients:
                client.close()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert (
        "max_connections=30000 open_files=300: serving at most 44 connections, about 22 nodes; "
        "raise the hard open-file limit (ulimit -Hn, systemd LimitNOFILE) for more"
    ) in err
