"""Heartbeat load on a real control plane over loopback HTTP.

Starts `navarch control-plane` as a subprocess (auth on, a fresh SQLite store), registers N nodes
from client processes, then runs two phases of the same length with the same connections and the
same schedule: every node sends SendHeartbeat (with metrics for 8 GPUs) once per interval, then
every node sends `GET /healthz` once per interval instead, the emptiest request the server answers.
It prints the achieved rate, latency percentiles and the server's CPU time per request of both.

Each node keeps one keep-alive connection, as a real node does. The clients write pre-encoded
HTTP/1.1 requests on raw trio sockets, so that they cost the shared CPU little.

To run it:

    .venv/bin/python bench/heartbeats.py --nodes 5000 --interval 15 --duration 30

With `--store postgresql://USER@HOST/DB` the control plane keeps its state in that PostgreSQL
database (an empty one: the bench registers its nodes afresh) instead of a fresh SQLite file. The
server CPU columns count the control plane's process alone, not PostgreSQL's.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import trio

SERVICE = "/navarch.v1.ControlPlaneService/"
ADMIN_TOKEN = "bench-admin-" + "a" * 32
JOIN_TOKEN = "bench-join-" + "j" * 32
READY = re.compile(r"listening on http://([\d.]+):(\d+)")


def _request(method: str, path: str, host: str, body: bytes = b"", token: str = "") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _metrics() -> dict:
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


class _Connection:
    """One keep-alive HTTP/1.1 connection that sends a request and reads the whole reply."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        await self.stream.send_all(request)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += await self._receive()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        while len(rest) < length:
            rest += await self._receive()
        self.buffer = rest[length:]
        return status, rest[:length]

    async def _receive(self) -> bytes:
        data = await self.stream.receive_some(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        return data


async def _worker_main(
    node_ids: list[str], host: str, port: int, interval: float, duration: float, pipe
) -> None:
    hostport = f"{host}:{port}"
    connections: dict[str, _Connection] = {}
    tokens: dict[str, str] = {}
    limiter = trio.CapacityLimiter(32)

    async def register(node_id: str) -> None:
        async with limiter:
            stream = await trio.open_tcp_stream(host, port)
            connection = connections[node_id] = _Connection(stream)
            body = json.dumps(
                {
                    "nodeId": node_id,
                    "provider": "bench",
                    "instanceType": "h100-8x",
                    "gpus": [{"index": i, "uuid": f"GPU-{node_id}-{i}"} for i in range(8)],
                }
            ).encode()
            status, reply = await connection.exchange(
                _request("POST", SERVICE + "RegisterNode", hostport, body, JOIN_TOKEN)
            )
            if status != 200:
                raise RuntimeError(f"registration of {node_id} failed: {status} {reply[:200]}")
            tokens[node_id] = json.loads(reply)["nodeToken"]

    async with trio.open_nursery() as nursery:
        for node_id in node_ids:
            nursery.start_soon(register, node_id)
    pipe.send("registered")
    start_wall = pipe.recv()
    metrics = _metrics()
    results: dict[str, list[tuple[float, float, int]]] = {"heartbeat": [], "healthz": []}

    async def run_node(node_id: str, offset: float, trio_start: float) -> None:
        connection = connections[node_id]
        heartbeat = _request(
            "POST",
            SERVICE + "SendHeartbeat",
            hostport,
            json.dumps({"nodeId": node_id, "metrics": metrics}).encode(),
            tokens[node_id],
        )
        healthz = _request("GET", "/healthz", hostport)
        for phase, request, phase_start in (
            ("heartbeat", heartbeat, trio_start),
            ("healthz", healthz, trio_start + duration),
        ):
            due = phase_start + offset
            while due < phase_start + duration:
                await trio.sleep_until(due)
                sent = time.perf_counter()
                try:
                    status, _ = await connection.exchange(request)
                except (ConnectionError, trio.BrokenResourceError):
                    status = 0
                results[phase].append((due - trio_start, time.perf_counter() - sent, status))
                due += interval

    trio_start = trio.current_time() + (start_wall - time.time())
    rng = random.Random(node_ids[0])
    async with trio.open_nursery() as nursery:
        for node_id in node_ids:
            nursery.start_soon(run_node, node_id, rng.uniform(0, interval), trio_start)
    for connection in connections.values():
        await connection.stream.aclose()
    pipe.send(results)


def _worker(node_ids, host, port, interval, duration, pipe) -> None:
    # The client's own collection pauses would be counted as server latency.
    gc.disable()
    trio.run(_worker_main, node_ids, host, port, interval, duration, pipe)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _wait_for_leader(host: str, port: int) -> None:
    """Waits until the control plane leads: on PostgreSQL its first term begins after its ready
    line, and until then it refuses registrations."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/readyz?role=leader", timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("the control plane did not lead within 60 s") from None
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10.0, help="heartbeat interval, seconds")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument(
        "--store", default="", help="the store's URL (postgresql://...); default: a SQLite file"
    )
    args = parser.parse_args()

    data = tempfile.mkdtemp(prefix="navarch-bench-")
    config = Path(data) / "bench.toml"
    config.write_text(f'[server]\nheartbeat_interval = "{args.interval}s"\n')
    env = {**os.environ, "NAVARCH_ADMIN_TOKEN": ADMIN_TOKEN, "NAVARCH_JOIN_TOKEN": JOIN_TOKEN}
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "navarch", "control-plane", "--config", str(config)),
            *("--listen", "127.0.0.1:0"),
            *(("--store", args.store) if args.store else ("--data-dir", data)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        match = READY.search(server.stdout.readline())
        if match is None:
            raise SystemExit("the control plane did not start")
        host, port = match.group(1), int(match.group(2))
        _wait_for_leader(host, port)
        node_ids = [f"bench-{i:05d}" for i in range(args.nodes)]
        pipes, workers = [], []
        for w in range(args.workers):
            parent, child = multiprocessing.Pipe()
            process = multiprocessing.Process(
                target=_worker,
                args=(node_ids[w :: args.workers], host, port, args.interval, args.duration, child),
            )
            process.start()
            pipes.append(parent)
            workers.append(process)
        registering = time.monotonic()
        for pipe in pipes:
            assert pipe.recv() == "registered"
        registered_in = time.monotonic() - registering
        start = time.time() + 1.0
        for pipe in pipes:
            pipe.send(start)
        cpu = []
        for boundary in (start, start + args.duration, start + 2 * args.duration):
            time.sleep(max(0.0, boundary - time.time()))
            cpu.append(_cpu_seconds(server.pid))
        results = {"heartbeat": [], "healthz": []}
        for pipe in pipes:
            for phase, rows in pipe.recv().items():
                results[phase] += rows
        for process in workers:
            process.join()
    finally:
        server.terminate()
        server.wait(timeout=60)

    print(
        f"nodes {args.nodes}, interval {args.interval:g}s, {args.duration:g}s per phase, "
        f"offered {args.nodes / args.interval:.0f} requests/s; "
        f"{args.nodes} registrations in {registered_in:.1f}s; "
        f"store {'postgresql' if args.store else 'sqlite'}"
    )
    rows = {}
    for i, phase in enumerate(("heartbeat", "healthz")):
        latencies = [lat for _, lat, status in results[phase] if status == 200]
        errors = sum(1 for _, _, status in results[phase] if status != 200)
        server_cpu = cpu[i + 1] - cpu[i]
        rows[phase] = {
            "rate": len(latencies) / args.duration,
            "p50": _percentile(latencies, 0.50) * 1000,
            "p99": _percentile(latencies, 0.99) * 1000,
            "mean": statistics.fmean(latencies) * 1000,
            "cpu_ms": server_cpu / max(1, len(latencies)) * 1000,
            "cpu_share": server_cpu / args.duration,
            "errors": errors,
        }
    print(
        f"{'phase':<10} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'mean ms':>8} "
        f"{'server CPU ms/req':>18} {'server CPU':>10} {'errors':>6}"
    )
    for phase, r in rows.items():
        print(
            f"{phase:<10} {r['rate']:7.0f} {r['p50']:7.2f} {r['p99']:7.2f} {r['mean']:8.2f} "
            f"{r['cpu_ms']:18.3f} {r['cpu_share']:9.0%} {r['errors']:6d}"
        )
    ratio = rows["heartbeat"]["cpu_ms"] / rows["healthz"]["cpu_ms"]
    print(f"heartbeat / empty request, server CPU per request: {ratio:.2f}x")


if __name__ == "__main__":
    main()
