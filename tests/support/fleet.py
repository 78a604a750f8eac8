"""Real processes on loopback: a control plane, daemons, and the CLI, as an operator runs them."""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]

ADMIN_TOKEN = "e2e-admin-token"
JOIN_TOKEN = "e2e-join-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process whose output goes to a file, read back when a test needs it."""

    def __init__(self, name: str, args: list[str], log_dir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "navarch", *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            cwd=REPO,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    f"{self.name} did not stop on SIGTERM:\n{self.output()}"
                ) from None
            finally:
                self._log.close()
        self._log.close()


class Fleet:
    """One control plane and any number of daemons, all children of the test."""

    def __init__(self, tmp: Path, *, auth: bool = False) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.server = f"http://127.0.0.1:{self.port}"
        self.data_dir = tmp / "data"
        self.auth = auth
        self.processes: list[Process] = []
        self.config = tmp / "navarch.toml"
        self.config.write_text(
            '[server]\nheartbeat_interval = "1s"\nheartbeat_timeout = "3s"\n'
            'health_check_interval = "2s"\ncommand_poll_wait = "5s"\n'
        )
        self.control_plane: Process | None = None

    def env(self, **extra: str) -> dict[str, str]:
        env = {"NAVARCH_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONUNBUFFERED": "1", **extra}
        # Nothing of the test runner's own navarch settings leaks into the children.
        for key in ("NAVARCH_SERVER", "NAVARCH_TOKEN", "NAVARCH_ADMIN_TOKEN", "NAVARCH_JOIN_TOKEN"):
            env.setdefault(key, "")
        return env

    def start_control_plane(self) -> Process:
        env = self.env()
        if self.auth:
            env.update(NAVARCH_ADMIN_TOKEN=ADMIN_TOKEN, NAVARCH_JOIN_TOKEN=JOIN_TOKEN)
        args = [
            "control-plane",
            "--config",
            str(self.config),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--data-dir",
            str(self.data_dir),
        ]
        cp = Process(f"control-plane-{len(self.processes)}", args, self.tmp, env)
        self.processes.append(cp)
        self.control_plane = cp
        wait_for(
            "the control plane to listen",
            lambda: "listening on" in cp.output() or cp.proc.poll() is not None,
            timeout=15,
        )
        assert cp.proc.poll() is None, cp.output()
        return cp

    def start_daemon(
        self, node_id: str, *, drain_command: str = "", gpus: int | None = 8, **env: str
    ) -> Process:
        """A daemon with `gpus` simulated GPUs, or with NVML's (env NAVARCH_NVML_LIBRARY)."""
        config = self.tmp / f"{node_id}.toml"
        config.write_text(
            f"[daemon]\ndrain_command = {json.dumps(drain_command)}\n"
            f'drain_timeout = "20s"\nstate_dir = {json.dumps(str(self.tmp / node_id))}\n'
        )
        env = self.env(NAVARCH_JOIN_TOKEN=JOIN_TOKEN if self.auth else "", **env)
        args = [
            "daemon",
            "--control-plane",
            self.server,
            "--node-id",
            node_id,
            "--config",
            str(config),
            "--pool",
            "e2e",
            "--provider",
            "fake",
            "--region",
            "local",
            "--label",
            "rack=r1",
        ]
        if gpus is not None:
            args += ["--simulated-gpus", str(gpus)]
        daemon = Process(node_id, args, self.tmp, env)
        self.processes.append(daemon)
        return daemon

    def cli(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        env = self.env(NAVARCH_SERVER=self.server)
        env["NAVARCH_ADMIN_TOKEN"] = (
            token if token is not None else (ADMIN_TOKEN if self.auth else "")
        )
        return subprocess.run(
            [sys.executable, "-m", "navarch", *args],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            cwd=REPO,
            timeout=60,
            check=False,
        )

    def nodes(self) -> dict[str, dict[str, Any]]:
        result = self.cli("list", "--all", "-o", "json")
        if result.returncode != 0:
            return {}
        return {node["nodeId"]: node for node in json.loads(result.stdout)}

    def node(self, node_id: str) -> dict[str, Any]:
        return self.nodes().get(node_id, {})

    def answered(self) -> collections.Counter[str]:
        """The API calls the control plane has answered so far, by method, from its /metrics."""
        text = httpx.get(f"{self.server}/metrics", timeout=10, trust_env=False).text
        counts: collections.Counter[str] = collections.Counter()
        for family in text_string_to_metric_families(text):
            if family.name == "navarch_api_requests":
                for sample in family.samples:
                    counts[sample.labels["method"]] += int(sample.value)
        return counts

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 15.0) -> Any:
        """`wait_for`, with the end of every process's log when it times out."""
        try:
            return wait_for(what, check, timeout)
        except AssertionError as exc:
            logs = "\n".join(
                f"--- {p.name} (exit {p.proc.poll()}):\n" + "\n".join(p.output().splitlines()[-15:])
                for p in self.processes
            )
            raise AssertionError(f"{exc}\n{logs}") from None

    def wait_status(self, node_id: str, status: str, timeout: float = 15.0) -> dict[str, Any]:
        return self.wait_for(
            f"node {node_id} to be {status}",
            lambda: (n := self.node(node_id)).get("status") == f"NODE_STATUS_{status}" and n,
            timeout,
        )

    def stop(self) -> None:
        """Stops the daemons, then the control planes, as an operator shuts a fleet down."""
        errors = []
        daemons = [p for p in self.processes if not p.name.startswith("control-plane")]
        planes = [p for p in self.processes if p.name.startswith("control-plane")]
        for process in [*reversed(daemons), *reversed(planes)]:
            try:
                process.stop()
            except AssertionError as exc:
                errors.append(str(exc))
        assert not errors, "\n\n".join(errors)
