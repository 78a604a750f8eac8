"""Real queue systems for the metrics-source tests, and fakes of the ones that cannot run here.

- `prometheus_server`: a Prometheus started from its binary on a loopback port, with its own
  configuration and data directory, scraping an `Exporter` the test serves every second. Where
  the binary is absent the tests skip, unless NAVARCH_REQUIRE_PROMETHEUS=1 (CI) makes that a
  failure.
- `redis_address` and `rabbitmq_address`: the servers on their usual loopback ports; tests skip
  where none answers, unless NAVARCH_REQUIRE_REDIS=1 or NAVARCH_REQUIRE_RABBITMQ=1.
- `AmqpQueues`: makes, fills and deletes RabbitMQ queues, over the source's own AMQP framing.
- `FakeKubernetes`: the pod list of the Kubernetes API, served on loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import trio

from navarch.plugins.builtin.metrics import rabbitmq


def require(what: str, variable: str, reason: str) -> None:
    """Skips the test, or fails it where CI sets `variable` to 1 and so requires `what`."""
    if os.environ.get(variable) == "1":
        pytest.fail(f"{variable}=1, but {reason}")
    pytest.skip(f"{reason}; {what} tests need it")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """Serves `handler` on a loopback port in a thread; yields the port."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


class Exporter(BaseHTTPRequestHandler):
    """A Prometheus exporter: /metrics serves `Exporter.text`."""

    text = ""

    def do_GET(self) -> None:
        body = Exporter.text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


PROMETHEUS_CONFIG = """
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: queue
    static_configs:
      - targets: ["127.0.0.1:{exporter}"]
"""


@contextmanager
def run_prometheus(base: Path, config: str) -> Iterator[tuple[str, Path]]:
    """Prometheus's URL and its log, running from its binary on a loopback port with `config` as
    its prometheus.yml and `base` as its directory; stopped afterwards. Skips where the binary is
    absent, unless NAVARCH_REQUIRE_PROMETHEUS=1."""
    binary = shutil.which("prometheus")
    if binary is None:
        require("the prometheus", "NAVARCH_REQUIRE_PROMETHEUS", "prometheus is not installed")
        raise AssertionError  # unreachable: require skipped or failed
    (base / "prometheus.yml").write_text(config)
    port = free_port()
    log = base / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={base / 'prometheus.yml'}",
                f"--storage.tsdb.path={base / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{port}", log
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def prometheus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus's URL, scraping `Exporter` every second; the exporter starts with one sample."""
    base = tmp_path_factory.mktemp("prometheus")
    Exporter.text = 'navarch_queue_depth{pool="p"} 0\n'
    with (
        serving(Exporter) as exporter,
        run_prometheus(base, PROMETHEUS_CONFIG.format(exporter=exporter)) as (url, log),
    ):
        wait_for_sample(url, "navarch_queue_depth", log=log)
        yield url


def wait_for_sample(
    url: str, query: str, value: str | None = None, log: Path | None = None
) -> None:
    """Waits until Prometheus has scraped a sample of `query` (of `value`, when given)."""
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            result = httpx.get(f"{url}/api/v1/query", params={"query": query}).json()
            samples = result["data"]["result"]
            if samples and (value is None or samples[0]["value"][1] == value):
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    shown = log.read_text()[-2000:] if log else ""
    raise AssertionError(f"prometheus never had {query} = {value}: {shown}")


def redis_address() -> tuple[str, int]:
    if not answers("127.0.0.1", 6379):
        require("the redis", "NAVARCH_REQUIRE_REDIS", "no Redis server answers on 127.0.0.1:6379")
    return "127.0.0.1", 6379


def rabbitmq_address() -> tuple[str, int]:
    if not answers("127.0.0.1", 5672):
        require(
            "the rabbitmq",
            "NAVARCH_REQUIRE_RABBITMQ",
            "no RabbitMQ broker answers on 127.0.0.1:5672",
        )
    return "127.0.0.1", 5672


class AmqpQueues(rabbitmq._Connection):
    """Declares, fills and deletes queues, with the framing of the source under test."""

    async def declare(self, queue: str) -> None:
        # Not passive: makes the queue. Flags: auto-delete off, durable off.
        arguments = struct.pack(">H", 0) + rabbitmq._short(queue) + b"\0" + rabbitmq._long(b"")
        await self._send(1, rabbitmq._DECLARE, arguments)
        await self._expect(1, rabbitmq._DECLARE_OK)

    async def publish(self, queue: str, body: bytes) -> None:
        # basic.publish to the default exchange, routed by the queue's name.
        arguments = struct.pack(">H", 0) + rabbitmq._short("") + rabbitmq._short(queue) + b"\0"
        await self._send(1, (60, 40), arguments)
        # The content header: class, weight, body size, no properties.
        header = struct.pack(">HHQH", 60, 0, len(body), 0)
        frames = struct.pack(">BHI", 2, 1, len(header)) + header + rabbitmq._FRAME_END
        frames += struct.pack(">BHI", 3, 1, len(body)) + body + rabbitmq._FRAME_END
        await self._stream.send_all(frames)

    async def delete(self, queue: str) -> None:
        arguments = struct.pack(">H", 0) + rabbitmq._short(queue) + b"\0"
        await self._send(1, (50, 40), arguments)
        await self._expect(1, (50, 41))


async def amqp(host: str, port: int) -> tuple[trio.SocketStream, AmqpQueues]:
    stream = await trio.open_tcp_stream(host, port)
    connection = AmqpQueues(stream)
    await connection.open("guest", "guest", "/")
    return stream, connection


class FakeKubernetes(BaseHTTPRequestHandler):
    """GET /api/v1/namespaces/NS/pods as the API server answers it: label and field selectors of
    the `key=value` form, pages of `limit` pods with a `continue` token, bearer tokens, and a
    Status object for an error. Set `pods` (namespace -> pod objects) and `token`."""

    pods: dict[str, list[dict[str, Any]]] = {}
    token = ""
    seen: list[str] = []

    def do_GET(self) -> None:
        FakeKubernetes.seen.append(self.path)
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        parts = url.path.strip("/").split("/")
        if self.headers.get("Authorization") != f"Bearer {FakeKubernetes.token}":
            return self._status(401, "Unauthorized", "Unauthorized")
        if parts[:3] != ["api", "v1", "namespaces"] or parts[4:] != ["pods"]:
            return self._status(404, "NotFound", "the server could not find the requested resource")
        pods = [
            p
            for p in FakeKubernetes.pods.get(parts[3], [])
            if _selected(p["metadata"].get("labels", {}), query.get("labelSelector", ""))
            and _selected({"status.phase": p["status"]["phase"]}, query.get("fieldSelector", ""))
        ]
        start = int(query.get("continue", "0"))
        limit = int(query.get("limit", "0")) or len(pods)
        page = pods[start : start + limit]
        more = str(start + limit) if start + limit < len(pods) else ""
        self._send(
            200,
            {
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": "1", **({"continue": more} if more else {})},
                "items": page,
            },
        )

    def _status(self, code: int, reason: str, message: str) -> None:
        self._send(
            code,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": reason,
                "code": code,
            },
        )

    def _send(self, code: int, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _selected(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def pod(
    name: str,
    *,
    phase: str = "Pending",
    gpus: int = 1,
    labels: dict[str, str] | None = None,
    node: str = "",
) -> dict[str, Any]:
    """A pod object as the API returns it, whose one container asks for `gpus` GPUs."""
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {"requests": {"cpu": "1"}}
    spec: dict[str, Any] = {
        "containers": [{"name": "train", "image": "trainer:1", "resources": resources}]
    }
    if node:
        spec["nodeName"] = node
    return {
        "metadata": {"name": name, "namespace": "ml", "labels": labels or {}},
        "spec": spec,
        "status": {"phase": phase},
    }
