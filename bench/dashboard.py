"""The dashboard at fleet scale: page load times and the heartbeat p99 with a dashboard open.

Starts `navarch control-plane` as a subprocess (auth on, a fresh SQLite store) and registers N
nodes (10,000 by default) from client processes, as bench/heartbeats.py does. Then, in headless
Chromium (Debian's /usr/bin/chromium, driven by Playwright):

1. Signs in and loads the fleet page and the nodes page several times each, timing from the
   navigation to the page drawn with its data (the fleet's totals; the first page of the nodes
   table), and the nodes table sorted by last heartbeat and filtered by a search.
2. Runs the nodes' heartbeats (every node once per interval, with 8 GPUs of metrics) through
   alternating phases without and with a dashboard open (the fleet page and the nodes page, live
   on the server-sent stream), with a few seconds between them in which Chromium opens or
   closes the pages, while an operator cordons and uncordons a node every two seconds in every
   phase, so the open pages take the stream's changes and refresh. It prints the heartbeats'
   latency percentiles per kind of phase, and the CPU share of the control plane and of the
   browser in each.

To run it:

    .venv/bin/python bench/dashboard.py --nodes 10000 --interval 30 --duration 20
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import trio
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))

# A sibling script, found through the path above.
from heartbeats import (
    READY,
    SERVICE,
    _Connection,
    _cpu_seconds,
    _metrics,
    _percentile,
    _request,
)

ADMIN_TOKEN = "bench-admin-" + "a" * 32
JOIN_TOKEN = "bench-join-" + "j" * 32
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
POOLS = ["train", "infer", "batch", "eval"]
SETTLE = 5.0
REGIONS = ["us-east-1", "us-west-2", "eu-west-1"]


async def _worker_main(node_ids: list[str], host: str, port: int, interval: float, pipe) -> None:
    hostport = f"{host}:{port}"
    connections: dict[str, _Connection] = {}
    tokens: dict[str, str] = {}
    limiter = trio.CapacityLimiter(32)

    async def register(index: int, node_id: str) -> None:
        async with limiter:
            stream = await trio.open_tcp_stream(host, port)
            connection = connections[node_id] = _Connection(stream)
            body = json.dumps(
                {
                    "nodeId": node_id,
                    "provider": "bench",
                    "region": REGIONS[index % len(REGIONS)],
                    "pool": POOLS[index % len(POOLS)],
                    "instanceType": "h100-8x",
                    "hostname": f"{node_id}.bench.internal",
                    "labels": {"rack": f"r{index % 40}"},
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
            nursery.start_soon(register, int(node_id.rsplit("-", 1)[1]), node_id)
    pipe.send("registered")
    start_wall, end_wall = pipe.recv()
    metrics = _metrics()
    # (due time since the start in seconds, latency in seconds, HTTP status)
    results: list[tuple[float, float, int]] = []
    trio_start = trio.current_time() + (start_wall - time.time())
    trio_end = trio_start + (end_wall - start_wall)

    async def run_node(node_id: str, offset: float) -> None:
        connection = connections[node_id]
        heartbeat = _request(
            "POST",
            SERVICE + "SendHeartbeat",
            hostport,
            json.dumps({"nodeId": node_id, "metrics": metrics}).encode(),
            tokens[node_id],
        )
        due = trio_start + offset
        while due < trio_end:
            await trio.sleep_until(due)
            sent = time.perf_counter()
            try:
                status, _ = await connection.exchange(heartbeat)
            except (ConnectionError, trio.BrokenResourceError):
                status = 0
            results.append((due - trio_start, time.perf_counter() - sent, status))
            due += interval

    rng = random.Random(node_ids[0])
    async with trio.open_nursery() as nursery:
        for node_id in node_ids:
            nursery.start_soon(run_node, node_id, rng.uniform(0, interval))
    for connection in connections.values():
        await connection.stream.aclose()
    pipe.send(results)


def _worker(node_ids, host, port, interval, pipe) -> None:
    # The client's own collection pauses would be counted as server latency.
    gc.disable()
    trio.run(_worker_main, node_ids, host, port, interval, pipe)


def _launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def _browser_cpu_seconds(exclude: set[int]) -> float:
    """CPU seconds of this script's descendants but `exclude`: the browser and its driver."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    ours = {os.getpid()}
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in ours and pid not in ours and pid not in exclude:
                ours.add(pid)
                changed = True
    total = 0.0
    for pid in ours - {os.getpid()}:
        try:
            total += _cpu_seconds(pid)
        except OSError:
            continue
    return total


def _signed_in_page(browser, url: str):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    # The sign-in form's POST, made by the context so that its cookie lands in the browser.
    answer = context.request.post(url + "/ui/signin", form={"token": ADMIN_TOKEN, "next": "/ui/"})
    if not answer.ok:
        raise SystemExit(f"signing in failed: {answer.status} {answer.text()[:200]}")
    return context.new_page()


def _time_load(page, address: str, ready: str, rounds: int) -> list[float]:
    """Seconds from navigating to `address` to `ready` (a selector) drawn, `rounds` times."""
    seconds = []
    for _ in range(rounds):
        page.goto("about:blank")
        started = time.perf_counter()
        page.goto(address)
        try:
            page.wait_for_selector(ready, timeout=60_000)
        except PlaywrightTimeout:
            banner = page.locator("#banner").text_content() or "nothing on the page"
            raise SystemExit(f"{address} did not draw {ready} in 60 s: {banner}") from None
        seconds.append(time.perf_counter() - started)
    return seconds


def _operator(url: str, stop: threading.Event, counts: dict[str, int]) -> None:
    """Cordons and uncordons one node every two seconds: changes the open pages stream."""
    with httpx.Client(base_url=url, trust_env=False, timeout=30) as client:
        while not stop.wait(2.0):
            kind = "COMMAND_TYPE_CORDON" if counts["changes"] % 2 == 0 else "COMMAND_TYPE_UNCORDON"
            try:
                client.post(
                    SERVICE + "IssueCommand",
                    json={"nodeId": "node-00000", "type": kind, "reason": "bench"},
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                ).raise_for_status()
            except httpx.HTTPError:
                counts["failed"] += 1
            else:
                counts["changes"] += 1


class _RemoteDashboard:
    """The open fleet and nodes pages as their API traffic alone, from this script: signed in
    with a session cookie, reading the stream, and one second after a change refreshing both
    pages with the calls they make. So it measures the dashboard's cost to the control plane as
    when the browser runs on an operator's machine, without Chromium's own CPU on this one."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, trust_env=False, timeout=30)
        answer = self.client.post("/ui/signin", data={"token": ADMIN_TOKEN, "next": "/ui/"})
        if answer.status_code >= 400:
            raise SystemExit(f"signing in failed: {answer.status_code} {answer.text[:200]}")
        self.csrf = self.client.get("/ui/session").json()["csrf"]
        self.changed = threading.Event()
        self.stop = threading.Event()
        self.refreshes = 0
        self.threads = [
            threading.Thread(target=self._listen, daemon=True),
            threading.Thread(target=self._refresh),
        ]
        for thread in self.threads:
            thread.start()

    def _listen(self) -> None:
        with (
            httpx.Client(
                base_url=str(self.client.base_url), cookies=self.client.cookies, trust_env=False
            ) as stream_client,
            stream_client.stream("GET", "/ui/stream", timeout=None) as stream,
        ):
            for line in stream.iter_lines():
                if self.stop.is_set():
                    return
                if line.startswith("event: "):
                    self.changed.set()

    def _refresh(self) -> None:
        headers = {"X-Navarch-CSRF": self.csrf}
        while not self.stop.is_set():
            if not self.changed.wait(0.5):
                continue
            time.sleep(1.0)
            self.changed.clear()
            self.client.post(SERVICE + "GetFleetSummary", json={}, headers=headers)
            self.client.post(
                SERVICE + "ListNodes", json={"orderBy": "id", "pageSize": 50}, headers=headers
            )
            self.refreshes += 1

    def close(self) -> None:
        self.stop.set()
        self.threads[1].join()
        self.client.close()


def _summary(latencies: list[float]) -> str:
    if not latencies:
        return "no samples"
    return (
        f"p50 {_percentile(latencies, 0.50) * 1000:7.2f} ms  "
        f"p99 {_percentile(latencies, 0.99) * 1000:7.2f} ms  "
        f"mean {statistics.fmean(latencies) * 1000:7.2f} ms  ({len(latencies)} heartbeats)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=30.0, help="heartbeat interval, seconds")
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds of each steady phase (4 in all)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="loads of each page to time")
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument(
        "--remote",
        action="store_true",
        help="the open dashboard's calls come from this script, not from Chromium on this "
        "machine, as when the browser runs on another machine",
    )
    parser.add_argument(
        "--samples", default="", help="write every heartbeat's (due s, latency s, status) here"
    )
    args = parser.parse_args()

    data = tempfile.mkdtemp(prefix="navarch-bench-")
    config = Path(data) / "bench.toml"
    config.write_text(
        f'[server]\nheartbeat_interval = "{args.interval}s"\n'
        f'heartbeat_timeout = "{max(3 * args.interval, 600)}s"\n'
    )
    env = {**os.environ, "NAVARCH_ADMIN_TOKEN": ADMIN_TOKEN, "NAVARCH_JOIN_TOKEN": JOIN_TOKEN}
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "navarch", "control-plane", "--config", str(config)),
            *("--listen", "127.0.0.1:0", "--data-dir", data),
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
        url = f"http://{host}:{port}"
        node_ids = [f"node-{i:05d}" for i in range(args.nodes)]
        pipes, workers = [], []
        for w in range(args.workers):
            parent, child = multiprocessing.Pipe()
            process = multiprocessing.Process(
                target=_worker,
                args=(node_ids[w :: args.workers], host, port, args.interval, child),
                # Ended with this script, whatever stops it.
                daemon=True,
            )
            process.start()
            pipes.append(parent)
            workers.append(process)
        registering = time.monotonic()
        for pipe in pipes:
            assert pipe.recv() == "registered"
        registered_in = time.monotonic() - registering
        print(f"{args.nodes} nodes registered in {registered_in:.1f}s")

        with sync_playwright() as playwright:
            browser = _launch(playwright)
            page = _signed_in_page(browser, url)
            loads = {
                "fleet page": _time_load(page, url + "/ui/", "#fleet-stats .stat", args.rounds),
                "nodes page": _time_load(
                    page, url + "/ui/nodes", "#nodes-table tbody tr[data-node]", args.rounds
                ),
                "nodes page, by last heartbeat, searched": _time_load(
                    page,
                    url + "/ui/nodes?q=r17&sort=-last_heartbeat",
                    "#nodes-table tbody tr[data-node]",
                    args.rounds,
                ),
            }
            for name, seconds in loads.items():
                print(
                    f"{name:<42} median {statistics.median(seconds) * 1000:6.0f} ms  "
                    f"max {max(seconds) * 1000:6.0f} ms  ({len(seconds)} loads)"
                )
            page.context.close()

            # (kind, seconds): steady phases without and with the pages open, and the seconds
            # in which Chromium opens them (a new context, sign-in, two page loads) or closes them.
            phases = [
                ("without", args.duration),
                ("opening", SETTLE),
                ("with", args.duration),
                ("closing", SETTLE),
            ] * 2
            bounds = []
            start = time.time() + 2.0
            at = start
            for kind, seconds in phases:
                bounds.append((kind, at - start, at - start + seconds))
                at += seconds
            for pipe in pipes:
                pipe.send((start, at))
            stop = threading.Event()
            counts = {"changes": 0, "failed": 0}
            operator = threading.Thread(target=_operator, args=(url, stop, counts))
            time.sleep(max(0.0, start - time.time()))
            operator.start()
            cpu = {kind: 0.0 for kind, _ in phases}
            browser_cpu = {kind: 0.0 for kind, _ in phases}
            others = {server.pid, *(process.pid for process in workers)}
            fleet = None
            remote: _RemoteDashboard | None = None
            refreshes = 0
            for kind, _, phase_end in bounds:
                before = _cpu_seconds(server.pid)
                browser_before = _browser_cpu_seconds(others)
                if kind == "opening" and args.remote:
                    remote = _RemoteDashboard(url)
                elif kind == "opening":
                    fleet = _signed_in_page(browser, url)
                    fleet.goto(url + "/ui/")
                    nodes = fleet.context.new_page()
                    nodes.goto(url + "/ui/nodes")
                elif kind == "closing" and remote is not None:
                    remote.close()
                    refreshes += remote.refreshes
                elif kind == "closing" and fleet is not None:
                    fleet.context.close()
                time.sleep(max(0.0, start + phase_end - time.time()))
                cpu[kind] += _cpu_seconds(server.pid) - before
                browser_cpu[kind] += _browser_cpu_seconds(others) - browser_before
            stop.set()
            operator.join()
            browser.close()
        samples: list[tuple[float, float, int]] = []
        for pipe in pipes:
            samples += pipe.recv()
        for process in workers:
            process.join()
    finally:
        server.terminate()
        server.wait(timeout=60)

    if args.samples:
        Path(args.samples).write_text(json.dumps(sorted(samples)))
    kinds = {
        "without": "without a dashboard open",
        "with": "with a dashboard open",
        "opening": "while it opens",
        "closing": "while it closes",
    }
    by_phase: dict[str, list[float]] = {kind: [] for kind in kinds}
    errors = dict.fromkeys(kinds, 0)
    for due, latency, status in samples:
        kind = next((k for k, low, high in bounds if low <= due < high), bounds[-1][0])
        if status == 200:
            by_phase[kind].append(latency)
        else:
            errors[kind] += 1
    print(
        f"heartbeats: {args.nodes} nodes every {args.interval:g}s "
        f"({args.nodes / args.interval:.0f}/s offered); twice: {args.duration:g}s without "
        f"a dashboard, {SETTLE:g}s opening it, {args.duration:g}s with it open, {SETTLE:g}s "
        f"closing it; a node cordoned or uncordoned every 2s ({counts['changes']} changes, "
        f"{counts['failed']} failed)"
    )
    if args.remote:
        print(f"the dashboard's pages as their API calls from this script: {refreshes} refreshes")
    for kind, title in kinds.items():
        seconds = sum(high - low for k, low, high in bounds if k == kind)
        print(
            f"{title:<26} {_summary(by_phase[kind])}  errors {errors[kind]}  "
            f"server CPU {cpu[kind] / seconds:.0%}  browser CPU {browser_cpu[kind] / seconds:.0%}"
        )


if __name__ == "__main__":
    main()
