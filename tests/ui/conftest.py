"""The dashboard's browser tests: headless Chromium (Debian's package, driven by Playwright) against
a real `navarch control-plane` process with a simulated fleet.

The fleet's nodes register through the real API with the join token and then act as daemons do:
a thread sends their heartbeats with GPU readings, and acknowledges the drain and terminate
commands they are handed, so remediation runs its steps. The control plane and the fleet are
shared by every test of the session; each test acts on nodes of its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.fleet import Process, free_port
from support.waiting import wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN_TOKEN = "ui-admin-" + "a" * 32
VIEWER_TOKEN = "ui-viewer-" + "v" * 32
JOIN_TOKEN = "ui-join-" + "j" * 32
VIEWPORT = {"width": 1400, "height": 900}
SERVICE = "/navarch.v1.ControlPlaneService/"

CONFIG = """\
[server]
heartbeat_interval = "2s"
heartbeat_timeout = "5m"
health_check_interval = "5s"
command_poll_wait = "2s"

[providers.fake]
gpu_count = 8
regions = ["us-east-1"]

[pools.train]
instance_type = "h100-8x"
min_nodes = 0
max_nodes = 32
scale_interval = "2s"

[[pools.train.providers]]
provider = "fake"

# Holds the pool's size: the hand-registered nodes are its nodes, and no round scales them down.
[pools.train.autoscaler]
type = "reactive"
scale_up_at = 100
scale_down_at = 0

[pools.train.health]
drain_timeout = "30s"

[pools.infer]
instance_type = "h100-8x"
min_nodes = 0
max_nodes = 16
scale_interval = "2s"

[[pools.infer.providers]]
provider = "fake"

# Holds the pool's size: the hand-registered nodes are its nodes, and no round scales them down.
[pools.infer.autoscaler]
type = "reactive"
scale_up_at = 100
scale_down_at = 0

[pools.batch]
instance_type = "h100-8x"
min_nodes = 2
max_nodes = 4
scale_interval = "2s"

[[pools.batch.providers]]
provider = "fake"
"""

# The hand-registered nodes: (node id, pool, region, labels). Tests act on nodes of their own.
NODES = [
    *[
        (f"train-{i:02d}", "train", "us-east-1", {"rack": f"r{1 + i % 3}", "team": "research"})
        for i in range(1, 11)
    ],
    *[
        (f"infer-{i:02d}", "infer", "eu-west-1", {"rack": "r9", "tier": "serving"})
        for i in range(1, 5)
    ],
]


def require_chromium() -> None:
    """Skips the test without Chromium, unless NAVARCH_REQUIRE_CHROMIUM=1 (CI), which fails it."""
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)"
    if os.environ.get("NAVARCH_REQUIRE_CHROMIUM") == "1":
        pytest.fail(message)
    pytest.skip(message)


def api(url: str, method: str, body: dict[str, Any], token: str) -> dict[str, Any]:
    """One API call with a bearer token; raises with the Connect error on failure."""
    response = httpx.post(
        url + SERVICE + method,
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        trust_env=False,
    )
    if response.status_code != 200:
        raise AssertionError(f"{method}: {response.status_code} {response.text}")
    answer: dict[str, Any] = response.json()
    return answer


def _gpus(node_id: str) -> list[dict[str, Any]]:
    return [
        {
            "index": i,
            "uuid": f"GPU-{node_id}-{i}",
            "name": "NVIDIA H100 80GB HBM3",
            "pciBusId": f"00000000:{0x18 + i:02X}:00.0",
            "memoryTotalBytes": 80 * 2**30,
        }
        for i in range(8)
    ]


def _readings(node_id: str, tick: int) -> dict[str, Any]:
    seed = sum(map(ord, node_id))
    return {
        "cpuPercent": float((seed + tick) % 40 + 10),
        "memoryPercent": float(seed % 30 + 40),
        "gpus": [
            {
                "index": i,
                "utilizationPercent": float((seed * (i + 3) + tick * 7) % 100),
                "memoryUsedBytes": ((seed + i * 13) % 70 + 5) * 2**30,
                "temperatureC": float(45 + (seed + i * 5) % 30),
                "powerWatts": float(250 + (seed * (i + 1)) % 400),
                # One GPU of each node has corrected some single-bit errors.
                "eccCorrected": seed % 7 if i == seed % 8 else 0,
            }
            for i in range(8)
        ],
    }


@dataclass
class SimulatedFleet:
    """Nodes registered through the API, kept alive by a thread that heartbeats as daemons do."""

    url: str
    tokens: dict[str, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    failures: list[str] = field(default_factory=list)

    def register(self, node_id: str, pool: str, region: str, labels: dict[str, str]) -> None:
        answer = api(
            self.url,
            "RegisterNode",
            {
                "nodeId": node_id,
                "provider": "fake",
                "region": region,
                "zone": region + "a",
                "instanceType": "h100-8x",
                "pool": pool,
                "hostname": f"{node_id}.cluster.internal",
                "labels": labels,
                "gpus": _gpus(node_id),
                "agentVersion": "ui-test",
            },
            JOIN_TOKEN,
        )
        self.tokens[node_id] = answer["nodeToken"]
        self.heartbeat(node_id, 0)
        # The daemon's first round of health checks, which found nothing wrong.
        api(self.url, "ReportHealth", {"nodeId": node_id, "events": []}, self.tokens[node_id])

    def heartbeat(self, node_id: str, tick: int) -> None:
        token = self.tokens[node_id]
        answer = api(
            self.url,
            "SendHeartbeat",
            {"nodeId": node_id, "metrics": _readings(node_id, tick)},
            token,
        )
        if answer.get("status") == "NODE_STATUS_TERMINATED":
            del self.tokens[node_id]
            return
        for command in answer.get("commands", []):
            # The daemon's drain and terminate, done at once.
            api(
                self.url,
                "AckCommand",
                {
                    "nodeId": node_id,
                    "commandId": command["commandId"],
                    "result": "COMMAND_RESULT_SUCCEEDED",
                },
                token,
            )

    def report_xid(self, node_id: str, xid: int, gpu: int = 0) -> dict[str, Any]:
        """The daemon's health report of one XID on one GPU, sent with the node's own token."""
        event = {
            "type": "HEALTH_EVENT_TYPE_XID",
            "time": datetime.now(UTC).isoformat(),
            "gpuIndex": gpu,
            "gpuUuid": f"GPU-{node_id}-{gpu}",
            "xid": xid,
            "message": f"NVRM: Xid (PCI:0000:{0x18 + gpu:02x}:00): {xid}, pid=4242",
        }
        return api(
            self.url, "ReportHealth", {"nodeId": node_id, "events": [event]}, self.tokens[node_id]
        )

    def start(self, interval: float = 1.0) -> None:
        def beat() -> None:
            tick = 0
            while not self._stop.wait(interval):
                tick += 1
                for node_id in list(self.tokens):
                    try:
                        self.heartbeat(node_id, tick)
                    except (AssertionError, httpx.HTTPError) as exc:
                        self.failures.append(f"{node_id}: {exc}")

        self._thread = threading.Thread(target=beat, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)


@dataclass
class Dashboard:
    url: str
    fleet: SimulatedFleet
    control_plane: Process
    admin_token: str = ADMIN_TOKEN
    viewer_token: str = VIEWER_TOKEN

    def admin(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        return api(self.url, method, body, ADMIN_TOKEN)

    def node(self, node_id: str) -> dict[str, Any]:
        node: dict[str, Any] = self.admin("GetNode", {"nodeId": node_id})["node"]
        return node


@pytest.fixture(scope="session")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("dashboard")
    config = tmp / "navarch.toml"
    config.write_text(CONFIG)
    port = free_port()
    env = {
        "NAVARCH_DISABLE_PLUGIN_AUTOLOAD": "1",
        "PYTHONUNBUFFERED": "1",
        "NAVARCH_ADMIN_TOKEN": ADMIN_TOKEN,
        "NAVARCH_JOIN_TOKEN": JOIN_TOKEN,
        "NAVARCH_VIEWER_TOKEN": VIEWER_TOKEN,
        "NAVARCH_SERVER": "",
        "NAVARCH_TOKEN": "",
    }
    args = ["control-plane", "--config", str(config), "--listen", f"127.0.0.1:{port}"]
    process = Process("control-plane", [*args, "--data-dir", str(tmp / "data")], tmp, env)
    try:
        wait_for(
            "the control plane to listen",
            lambda: "listening on" in process.output() or process.proc.poll() is not None,
            timeout=30,
        )
        assert process.proc.poll() is None, process.output()
        url = f"http://127.0.0.1:{port}"
        fleet = SimulatedFleet(url)
        for node_id, pool, region, labels in NODES:
            fleet.register(node_id, pool, region, labels)
        fleet.start()
        try:
            yield Dashboard(url, fleet, process)
        finally:
            fleet.stop()
        assert not fleet.failures, fleet.failures[:5]
    finally:
        process.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Watched:
    """A browser page and what it did that a user would not want: errors, other hosts."""

    page: Any
    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)


@pytest.fixture
def open_page(browser: Any, dashboard: Dashboard) -> Iterator[Callable[..., Watched]]:
    """Opens a fresh browser context (no cookies), signed in with `token` when one is given.

    At the end, every page must have logged no error (a CSP refusal is one) and asked no other
    host for anything.
    """
    contexts = []
    watched: list[Watched] = []

    def open_(token: str | None = None) -> Watched:
        context = browser.new_context(viewport=VIEWPORT)
        contexts.append(context)
        page = context.new_page()
        one = Watched(page)
        watched.append(one)
        page.on(
            "console",
            lambda message: one.errors.append(message.text) if message.type == "error" else None,
        )
        page.on("pageerror", lambda error: one.errors.append(str(error)))
        page.on(
            "request",
            lambda request: (
                None if request.url.startswith(dashboard.url) else one.foreign.append(request.url)
            ),
        )
        if token is not None:
            sign_in(page, dashboard.url, token)
        return one

    yield open_
    for context in contexts:
        context.close()
    for one in watched:
        assert not one.errors, one.errors
        assert not one.foreign, one.foreign


def sign_in(page: Any, url: str, token: str) -> None:
    page.goto(url + "/ui/signin")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/ui/")
