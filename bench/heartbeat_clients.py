"""The client side of `bench/heartbeats.py`: one process's share of the nodes.

Each client process registers its nodes, each on one keep-alive HTTP/1.1 connection, then runs
the phases the bench sends it over a pipe and sends back what it saw:

- ("paced", kind, period, duration, start): every node sends a heartbeat (kind "heartbeat") or
  `GET /healthz` (kind "empty") once per `period` seconds, open loop, from the wall time `start`
  for `duration` seconds. A node whose previous request has not been answered when its next one
  is due skips that one, and the skip is counted ("missed"). With kind "daemon" the nodes send
  heartbeats and honour a refusal as a daemon does: the heartbeats that fall due before its
  `Retry-After` (times a random 1 to 2) are not sent, and are counted as deferred.
- ("closed", connections, duration, start): `connections` extra connections each send the next
  heartbeat (of the nodes in turn) as soon as the previous answer arrives.
- ("daemons", interval): every node heartbeats like a daemon until ("stop",): once per interval,
  and after a failure it backs off with full jitter, waiting at least the `Retry-After` of a
  refusal, then reconnects and goes on with its node token.
- ("touch",): every node sends `GET /healthz` on its connection, 64 at a time, so that the next
  phase starts on open connections, as a fleet of heartbeating daemons has them (registering
  10,000 nodes can take longer than the server's keep-alive on a slow machine, and the first
  nodes' connections are then closed).
- ("exit",): closes the connections.

The requests are pre-encoded and written on raw trio sockets, so that the clients cost the shared
CPU little. The answers carry their `Content-Length`; a refusal is HTTP 503 with the Connect code
`unavailable` and a `Retry-After` header, as docs/api.md describes.
"""

from __future__ import annotations

import ctypes
import gc
import json
import random
import re
import signal
import time
from collections import Counter
from multiprocessing.connection import Connection as Pipe

import trio

SERVICE = "/navarch.v1.ControlPlaneService/"
OK, REFUSED, ERROR = 0, 1, 2
# The key under which a phase's errors carry its count of heartbeats deferred by Retry-After.
DEFERRED = "deferred"
# (seconds from the phase's start when sent, seconds to the answer, OK/REFUSED/ERROR)
Row = tuple[float, float, int]
_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")
# What `Worker.daemons` counts, in the order the bench prints them.
DAEMON_OUTCOMES = (
    "heartbeats accepted",
    "refused (503)",
    "connection failures",
    "auth failures (would register again)",
)
# The backoff of a daemon's heartbeat loop (navarch/daemon/backoff.py): attempt n waits
# uniform(0, min(interval, BASE * 2**n)).
BACKOFF_BASE = 1.0


def request(method: str, path: str, host: str, body: bytes = b"", token: str = "") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _metrics() -> dict[str, object]:
    gpus = [
        {
            "index": i,
            "utilizationPercent": 97.5,
            "memoryUsedBytes": 71 * 2**30,
            "temperatureC": 64.0,
            "powerWatts": 612.5,
        }
        for i in range(8)
    ]
    return {"cpuPercent": 41.5, "memoryPercent": 62.0, "gpus": gpus}


class Reply:
    """An answer: its status, and for a failure the Connect code and the Retry-After seconds."""

    __slots__ = ("body", "code", "retry_after", "status")

    def __init__(
        self, status: int, body: bytes, code: str = "", retry_after: float | None = None
    ) -> None:
        self.status = status
        self.body = body
        self.code = code
        self.retry_after = retry_after

    @property
    def outcome(self) -> int:
        if self.status == 200:
            return OK
        if self.status == 503 and self.code == "unavailable" and self.retry_after is not None:
            return REFUSED
        return ERROR

    def describe(self) -> str:
        if self.status == 503 and self.outcome == ERROR:
            return f"HTTP 503 {self.code or 'without a Connect code'}" + (
                "" if self.retry_after is not None else " without Retry-After"
            )
        return f"HTTP {self.status} {self.code}".rstrip()


class Connection:
    """One keep-alive HTTP/1.1 connection, opened again after the server closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.stream: trio.SocketStream | None = None
        self.buffer = b""

    async def exchange(self, data: bytes) -> Reply:
        """Sends `data` and reads the answer. A kept-alive connection that fails before any answer
        (the server closed it while idle) is opened again once; other failures raise OSError or
        trio.BrokenResourceError, and the next call opens a new connection."""
        reused = self.stream is not None
        try:
            return await self._exchange(data)
        except (OSError, trio.BrokenResourceError) as exc:
            await self.close()
            if not reused or not isinstance(exc, _Unanswered | trio.BrokenResourceError):
                raise
        return await self._exchange(data)

    async def _exchange(self, data: bytes) -> Reply:
        try:
            if self.stream is None:
                self.stream = await trio.open_tcp_stream(self.host, self.port)
            await self.stream.send_all(data)
            started = len(self.buffer)
            while b"\r\n\r\n" not in self.buffer:
                self.buffer += await self._receive(unanswered=len(self.buffer) == started)
        except BaseException:
            await self.close()
            raise
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        match = _LENGTH.search(head)
        if match is None:
            await self.close()
            raise OSError("the server answered without a Content-Length")
        length = int(match.group(1))
        try:
            while len(rest) < length:
                rest += await self._receive(unanswered=False)
        except BaseException:
            await self.close()
            raise
        self.buffer = rest[length:]
        body = rest[:length]
        status = int(head.split(b" ", 2)[1])
        if status == 200 and b"onnection: close" not in head:
            return Reply(200, body)
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().decode("latin-1")
        if headers.get(b"connection", "").lower() == "close":
            await self.close()
        code = ""
        if status != 200:
            try:
                code = str(json.loads(body).get("code", ""))
            except (ValueError, AttributeError):
                code = ""
        retry_after = None
        if b"retry-after" in headers:
            try:
                retry_after = float(headers[b"retry-after"])
            except ValueError:
                retry_after = None
        return Reply(status, body, code, retry_after)

    async def _receive(self, *, unanswered: bool) -> bytes:
        assert self.stream is not None
        data = await self.stream.receive_some(65536)
        if not data:
            raise (_Unanswered if unanswered else ConnectionError)(
                "the server closed the connection"
            )
        return data

    async def close(self) -> None:
        if self.stream is not None:
            stream, self.stream = self.stream, None
            self.buffer = b""
            with trio.move_on_after(1):
                await stream.aclose()


class _Unanswered(ConnectionError):
    """The connection closed before any byte of the answer."""


class Worker:
    """One client process's nodes, their connections and tokens."""

    def __init__(self, node_ids: list[str], host: str, port: int, join_token: str) -> None:
        self.node_ids = node_ids
        self.host = host
        self.port = port
        self.hostport = f"{host}:{port}"
        self.join_token = join_token
        self.connections = {node_id: Connection(host, port) for node_id in node_ids}
        self.heartbeats: dict[str, bytes] = {}
        self.rng = random.Random(node_ids[0] if node_ids else 0)

    async def register(self) -> None:
        limiter = trio.CapacityLimiter(32)
        metrics = _metrics()

        async def register(node_id: str) -> None:
            body = json.dumps(
                {
                    "nodeId": node_id,
                    "provider": "bench",
                    "instanceType": "h100-8x",
                    "gpus": [{"index": i, "uuid": f"GPU-{node_id}-{i}"} for i in range(8)],
                }
            ).encode()
            data = request("POST", SERVICE + "RegisterNode", self.hostport, body, self.join_token)
            connection = self.connections[node_id]
            while True:
                async with limiter:
                    reply = await connection.exchange(data)
                if reply.outcome != REFUSED:
                    break
                await trio.sleep((reply.retry_after or 0.0) * self.rng.uniform(1, 2))
            if reply.status != 200:
                raise SystemExit(f"registration of {node_id} failed: {reply.body[:300]!r}")
            token = json.loads(reply.body)["nodeToken"]
            self.heartbeats[node_id] = request(
                "POST",
                SERVICE + "SendHeartbeat",
                self.hostport,
                json.dumps({"nodeId": node_id, "metrics": metrics}).encode(),
                token,
            )

        async with trio.open_nursery() as nursery:
            for node_id in self.node_ids:
                nursery.start_soon(register, node_id)

    async def paced(
        self, kind: str, period: float, duration: float, start: float
    ) -> tuple[list[Row], int, Counter[str]]:
        rows: list[Row] = []
        errors: Counter[str] = Counter()
        missed = deferred = 0
        healthz = request("GET", "/healthz", self.hostport)
        trio_start = trio.current_time() + (start - time.time())

        async def node(node_id: str, offset: float) -> None:
            nonlocal missed, deferred
            connection = self.connections[node_id]
            data = healthz if kind == "empty" else self.heartbeats[node_id]
            due = trio_start + offset
            while due < trio_start + duration:
                await trio.sleep_until(due)
                sent = time.perf_counter()
                hint = None
                try:
                    reply = await connection.exchange(data)
                    outcome = reply.outcome
                    if outcome == ERROR:
                        errors[reply.describe()] += 1
                    elif outcome == REFUSED:
                        hint = reply.retry_after
                except (OSError, trio.BrokenResourceError) as exc:
                    outcome = ERROR
                    errors[f"connection: {exc.__class__.__name__}"] += 1
                rows.append((due - trio_start, time.perf_counter() - sent, outcome))
                due += period
                now = trio.current_time()
                if kind == "daemon" and hint is not None:
                    # As a daemon does: no request before the hint, plus jitter of up to the hint
                    # again; the heartbeats that fall due meanwhile are deferred, not sent.
                    resume = now + hint * self.rng.uniform(1, 2)
                    while due < resume:
                        deferred += 1
                        due += period
                elif due < now:
                    skipped = int((now - due) / period) + 1
                    missed += skipped
                    due += skipped * period

        async with trio.open_nursery() as nursery:
            for node_id in self.node_ids:
                nursery.start_soon(node, node_id, self.rng.uniform(0, period))
        if deferred:
            errors[DEFERRED] = deferred
        return rows, missed, errors

    async def closed(
        self, connections: int, duration: float, start: float
    ) -> tuple[list[Row], int, Counter[str]]:
        rows: list[Row] = []
        errors: Counter[str] = Counter()
        trio_start = trio.current_time() + (start - time.time())
        nodes = list(self.heartbeats.values())

        async def loop(index: int) -> None:
            connection = Connection(self.host, self.port)
            await trio.sleep_until(trio_start)
            turn = index
            while trio.current_time() < trio_start + duration:
                sent = time.perf_counter()
                try:
                    reply = await connection.exchange(nodes[turn % len(nodes)])
                    outcome = reply.outcome
                    if outcome == ERROR:
                        errors[reply.describe()] += 1
                except (OSError, trio.BrokenResourceError) as exc:
                    outcome = ERROR
                    errors[f"connection: {exc.__class__.__name__}"] += 1
                    await trio.sleep(0.1)
                rows.append((trio.current_time() - trio_start, time.perf_counter() - sent, outcome))
                turn += connections
            await connection.close()

        async with trio.open_nursery() as nursery:
            for index in range(connections):
                nursery.start_soon(loop, index)
        return rows, 0, errors

    async def daemons(self, interval: float, pipe: Pipe) -> dict[str, int]:
        """Heartbeats like daemons until the bench says stop; returns the counts of outcomes."""
        counts: Counter[str] = Counter()

        async def daemon(node_id: str, offset: float) -> None:
            connection = self.connections[node_id]
            rng = random.Random(node_id)
            attempt = 0
            await trio.sleep(offset)
            while True:
                next_beat = trio.current_time() + interval
                retry_after = 0.0
                try:
                    reply = await connection.exchange(self.heartbeats[node_id])
                except (OSError, trio.BrokenResourceError):
                    counts["connection failures"] += 1
                else:
                    if reply.status == 200:
                        counts["heartbeats accepted"] += 1
                        attempt = 0
                        await trio.sleep_until(next_beat)
                        continue
                    if reply.outcome == REFUSED:
                        counts["refused (503)"] += 1
                        retry_after = reply.retry_after or 0.0
                    elif reply.status in (401, 403, 404):
                        # A daemon would register again: the control plane forgot the node or
                        # its token. It must not happen across a restart.
                        counts["auth failures (would register again)"] += 1
                    else:
                        counts[f"other errors ({reply.describe()})"] += 1
                ceiling = min(interval, BACKOFF_BASE * 2**attempt)
                attempt = min(attempt + 1, 30)
                await trio.sleep(retry_after + rng.uniform(0, ceiling))

        async with trio.open_nursery() as nursery:
            for node_id in self.node_ids:
                nursery.start_soon(daemon, node_id, self.rng.uniform(0, interval))
            await trio.to_thread.run_sync(pipe.recv)
            nursery.cancel_scope.cancel()
        return dict(counts)

    async def touch(self) -> tuple[()]:
        limiter = trio.CapacityLimiter(64)
        healthz = request("GET", "/healthz", self.hostport)

        async def touch(connection: Connection) -> None:
            async with limiter:
                await connection.exchange(healthz)

        async with trio.open_nursery() as nursery:
            for connection in self.connections.values():
                nursery.start_soon(touch, connection)
        return ()

    async def close(self) -> None:
        for connection in self.connections.values():
            await connection.close()


async def _main(worker: Worker, pipe: Pipe) -> None:
    await worker.register()
    pipe.send(("registered",))
    while True:
        command = await trio.to_thread.run_sync(pipe.recv)
        if command[0] == "paced":
            pipe.send(await worker.paced(*command[1:]))
        elif command[0] == "closed":
            pipe.send(await worker.closed(*command[1:]))
        elif command[0] == "daemons":
            pipe.send(await worker.daemons(command[1], pipe))
        elif command[0] == "touch":
            pipe.send(await worker.touch())
        else:
            await worker.close()
            return


def run(node_ids: list[str], host: str, port: int, join_token: str, pipe: Pipe) -> None:
    """A client process's entry point. The bench stops it: it ignores Ctrl-C, and ends when the
    bench dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    # The client's own collection pauses would be counted as server latency.
    gc.disable()
    trio.run(_main, Worker(node_ids, host, port, join_token), pipe)
