"""Two real control planes on one PostgreSQL database, real daemons that know both, a TCP proxy
that can cut one control plane off from the database, and what the database holds afterwards."""

from __future__ import annotations

import collections
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import psycopg
from support.fleet import ADMIN_TOKEN, JOIN_TOKEN, Process, free_port
from support.waiting import wait_for

LEASE_TTL = "3s"


class PausableProxy:
    """Relays TCP connections to `target`; `pause()` stops relaying in both directions, as a
    network partition does (bytes wait, connections stay open), and `resume()` heals it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._closed = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def pause(self) -> None:
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._closed = True
        self._open.set()
        self._listener.close()
        for sock in self._sockets:
            sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._open.wait()
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self._open.wait()
                if self._closed:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def rpc(url: str, method: str, body: dict[str, Any], timeout: float = 5.0) -> httpx.Response:
    """One Connect JSON call with the admin token, to exactly this control plane."""
    return httpx.post(
        f"{url}/navarch.v1.ControlPlaneService/{method}",
        json=body,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Connect-Protocol-Version": "1"},
        timeout=timeout,
        trust_env=False,
    )


def readyz(url: str, query: str = "") -> tuple[int, str]:
    try:
        response = httpx.get(f"{url}/readyz{query}", timeout=3, trust_env=False)
    except httpx.TransportError as exc:
        return 0, type(exc).__name__
    return response.status_code, response.text.strip()


class Cluster:
    """Control planes `a` and `b` on the database at `database_url`, and daemons knowing both."""

    def __init__(self, tmp: Path, database_url: str) -> None:
        self.tmp = tmp
        self.database_url = database_url
        self.urls: dict[str, str] = {}
        self.processes: dict[str, Process] = {}
        self.daemons: dict[str, Process] = {}

    def env(self) -> dict[str, str]:
        return {
            "NAVARCH_DISABLE_PLUGIN_AUTOLOAD": "1",
            "PYTHONUNBUFFERED": "1",
            "NAVARCH_ADMIN_TOKEN": ADMIN_TOKEN,
            "NAVARCH_JOIN_TOKEN": JOIN_TOKEN,
            "NAVARCH_SERVER": "",
        }

    def start_control_plane(self, name: str, store_url: str | None = None) -> Process:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        config = self.tmp / f"{name}.toml"
        config.write_text(
            '[server]\nheartbeat_interval = "1s"\nheartbeat_timeout = "60s"\n'
            'health_check_interval = "2s"\ncommand_poll_wait = "2s"\n'
            f"[store]\nurl = {json.dumps(store_url or self.database_url)}\n"
            f"[ha]\nlease_ttl = {json.dumps(LEASE_TTL)}\nadvertise_url = {json.dumps(url)}\n"
        )
        args = ["control-plane", "--config", str(config), "--listen", f"127.0.0.1:{port}"]
        process = Process(f"control-plane-{name}", args, self.tmp, self.env())
        self.urls[name] = url
        self.processes[name] = process
        self.wait_for(
            f"control plane {name} to listen",
            lambda: "listening on" in process.output() or process.proc.poll() is not None,
        )
        assert process.proc.poll() is None, process.output()
        return process

    def start_daemon(self, node_id: str) -> Process:
        config = self.tmp / f"{node_id}.toml"
        urls = [self.urls["a"], self.urls["b"]]
        config.write_text(
            f"[daemon]\ncontrol_plane = {json.dumps(urls)}\n"
            f"state_dir = {json.dumps(str(self.tmp / node_id))}\n"
            # This machine is never reset or rebooted, whatever remediation asks.
            'reset_command = ""\nreboot_command = ""\n'
        )
        args = ["daemon", "--node-id", node_id, "--config", str(config), "--simulated-gpus", "2"]
        daemon = Process(node_id, args, self.tmp, {**self.env(), "NAVARCH_ADMIN_TOKEN": ""})
        self.daemons[node_id] = daemon
        return daemon

    def role(self, name: str) -> str:
        """What the control plane's /readyz says of it ("leader", "follower of URL", ...)."""
        status, text = readyz(self.urls[name])
        return text.removeprefix("ready: ") if status == 200 else f"not ready ({status}): {text}"

    def leads(self, name: str) -> bool:
        return readyz(self.urls[name], "?role=leader")[0] == 200

    def wait_for(self, what: str, check: Any, timeout: float = 20.0) -> Any:
        try:
            return wait_for(what, check, timeout)
        except AssertionError as exc:
            logs = "\n".join(
                f"--- {p.name} (exit {p.proc.poll()}):\n" + "\n".join(p.output().splitlines()[-20:])
                for p in [*self.processes.values(), *self.daemons.values()]
            )
            raise AssertionError(f"{exc}\n{logs}") from None

    def stop(self) -> None:
        for process in [*self.daemons.values(), *self.processes.values()]:
            if process.proc.poll() is None:
                process.stop()
            else:
                process.stop()  # closes its log


class Database:
    """What the store holds, read straight from PostgreSQL."""

    def __init__(self, url: str) -> None:
        self.url = url

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def node_ids(self) -> set[str]:
        return {row[0] for row in self.rows("SELECT node_id FROM nodes")}

    def event_ids(self) -> set[str]:
        return {row[0] for row in self.rows("SELECT event_id FROM events")}

    def events_by(self, kind: str, key: str = "") -> collections.Counter[str]:
        """How many events of `kind` each node (or each `key` of the details) has."""
        counts: collections.Counter[str] = collections.Counter()
        for node_id, details in self.rows(
            "SELECT node_id, details FROM events WHERE kind = %s", kind
        ):
            counts[json.loads(details)[key] if key else node_id] += 1
        return counts

    def commands(self, kind: str = "") -> dict[str, str]:
        """Every command's status (of one type, given `kind`), by id."""
        if kind:
            return dict(self.rows("SELECT command_id, status FROM commands WHERE type = %s", kind))
        return dict(self.rows("SELECT command_id, status FROM commands"))

    def episodes(self, node_id: str) -> list[tuple[str, str, int]]:
        """The node's remediation episodes: (id, step, 1 while open)."""
        return [
            (episode_id, step, is_open)
            for episode_id, step, is_open in self.rows(
                "SELECT episode_id, step, open FROM remediations WHERE node_id = %s", node_id
            )
        ]

    def lease(self) -> tuple[str, int]:
        [(address, token)] = self.rows("SELECT address, token FROM leader_lease")
        return address, token


def run_cli(*args: str, server: str) -> subprocess.CompletedProcess[str]:
    """`navarch ARGS` as an operator runs it, with `--server` URLs and the admin token."""
    return subprocess.run(
        [sys.executable, "-m", "navarch", *args],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "NAVARCH_SERVER": server,
            "NAVARCH_ADMIN_TOKEN": ADMIN_TOKEN,
            "NAVARCH_DISABLE_PLUGIN_AUTOLOAD": "1",
        },
        timeout=60,
        check=False,
    )
