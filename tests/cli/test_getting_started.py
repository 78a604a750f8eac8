"""docs/getting-started.md, run as a new user runs it: twice in a row, on the same store.

The control plane listens on a free port instead of 50051 and heartbeats come every second
instead of every five, so that the lost heartbeat shows in seconds; everything else is the
example configuration and the commands of the guide.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from support.control_plane_process import control_plane_process
from support.fleet import free_port
from support.navarch_process import REPO, run_navarch
from support.waiting import wait_for

GUIDE = REPO / "docs" / "getting-started.md"
EXAMPLE = REPO / "examples" / "local-fleet.toml"


def test_the_guide_works_twice_in_a_row_on_the_same_store(tmp_path: Path) -> None:
    guide = GUIDE.read_text()
    config = _fast_example(tmp_path, free_port())
    (tmp_path / "gpu-2.toml").write_text(_code_after(guide, "configuration to `gpu-2.toml`"))
    daemon_commands = re.findall(r"`(navarch daemon [^`]+)`", guide)
    assert len(daemon_commands) == 2, daemon_commands
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "NAVARCH_ADMIN_TOKEN": ""}
    env["NAVARCH_JOIN_TOKEN"] = ""
    for _ in range(2):
        with control_plane_process("--config", str(config), env=env) as (_, url, store):
            assert store == str(tmp_path / "data" / "navarch" / "navarch.db")
            cli_env = {**env, "NAVARCH_SERVER": url, "COLUMNS": "200"}
            with (
                _daemon(daemon_commands[0], url, tmp_path) as first,
                _daemon(daemon_commands[1], url, tmp_path),
            ):
                _walk_through(cli_env, url, first, daemon_commands[0], tmp_path)


def _walk_through(
    env: dict[str, str], url: str, first: subprocess.Popen[str], command: str, cwd: Path
) -> None:
    def navarch(*args: str) -> str:
        done = run_navarch(*args, env=env, cwd=cwd)
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout

    wait_for("gpu-1 and gpu-2 active", lambda: _statuses(url, "gpu-1", "gpu-2") == ["active"] * 2)
    listing = navarch("list")
    assert re.search(r"gpu-1 .* active ", listing), listing

    navarch("cordon", "gpu-1", "--reason", "fan noise")
    assert _statuses(url, "gpu-1") == ["cordoned"]
    navarch("uncordon", "gpu-1")
    assert _statuses(url, "gpu-1") == ["active"]

    drained = navarch("drain", "gpu-2", "--wait")
    assert "node gpu-2 drained: moved 3 jobs" in drained, drained
    assert "draining -> drained" in navarch("events")
    navarch("uncordon", "gpu-2")

    first.send_signal(signal.SIGINT)
    first.wait(timeout=10)
    wait_for("gpu-1 unhealthy", lambda: _statuses(url, "gpu-1") == ["unhealthy"], timeout=10)
    with _daemon(command, url, cwd):
        beat = _node(url, "gpu-1")["lastHeartbeatAt"]
        wait_for("a new heartbeat of gpu-1", lambda: _node(url, "gpu-1")["lastHeartbeatAt"] != beat)
        assert _statuses(url, "gpu-1") == ["unhealthy"]
        navarch("uncordon", "gpu-1", "--force")
        assert _statuses(url, "gpu-1") == ["active"]


def _fast_example(tmp_path: Path, port: int) -> Path:
    text = EXAMPLE.read_text()
    for line, fast in (
        ('listen = "127.0.0.1:50051"', f'listen = "127.0.0.1:{port}"'),
        ('heartbeat_interval = "5s"', 'heartbeat_interval = "1s"'),
    ):
        assert line in text, f"{EXAMPLE} no longer has {line!r}; update this test"
        text = text.replace(line, fast)
    path = tmp_path / "local-fleet.toml"
    path.write_text(text)
    return path


def _code_after(text: str, marker: str) -> str:
    """The first fenced code block after `marker`, without its indentation."""
    block = text[text.index(marker) :].split("```")[1]
    lines = block.splitlines()[1:]
    return "\n".join(line.strip() for line in lines) + "\n"


@contextmanager
def _daemon(command: str, url: str, cwd: Path) -> Iterator[subprocess.Popen[str]]:
    args = [*command.split()[1:], "--control-plane", url]
    process = subprocess.Popen(
        [sys.executable, "-m", "navarch", *args],
        cwd=cwd,
        env={**os.environ, "NAVARCH_JOIN_TOKEN": "", "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
        assert process.returncode == 0, err


def _nodes(url: str) -> list[dict[str, Any]]:
    reply = httpx.post(f"{url}/navarch.v1.ControlPlaneService/ListNodes", json={}, timeout=5)
    reply.raise_for_status()
    nodes: list[dict[str, Any]] = json.loads(reply.text).get("nodes", [])
    return nodes


def _node(url: str, node_id: str) -> dict[str, Any]:
    return next(n for n in _nodes(url) if n["nodeId"] == node_id)


def _statuses(url: str, *node_ids: str) -> list[str]:
    by_id = {n["nodeId"]: n["status"] for n in _nodes(url)}
    return [by_id.get(i, "").removeprefix("NODE_STATUS_").lower() for i in node_ids]
