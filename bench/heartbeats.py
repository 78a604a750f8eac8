"""Heartbeat load on a real control plane over loopback HTTP.

Starts `navarch control-plane` as a subprocess (auth on, a fresh SQLite store), registers N nodes
from client processes (bench/heartbeat_clients.py), each on one keep-alive connection, as a real
node does, then runs the phases named by `--phases`, in that order:

- heartbeat: every node sends SendHeartbeat (with metrics for 8 GPUs) once per `--interval`.
- empty: every node sends `GET /healthz` once per interval instead, the emptiest request the
  server answers. No node goes silent past its timeout meanwhile: with this phase the control
  plane runs with a `heartbeat_timeout` longer than the whole run.
- saturation: closed loop, `--connections` extra connections each sending the next heartbeat as
  soon as the previous answer arrives; its rate is the saturation rate.
- rate: open loop, `--rate` heartbeats/s offered in all, spread over the nodes.
- overload: open loop at `--overload-rate` heartbeats/s (default twice the saturation phase's
  rate) for `--overload-duration` seconds; counts the answers accepted, refused (HTTP 503 with
  the Connect code `unavailable` and `Retry-After`) and failed, the first two also per 10 s of
  the phase, then asks the control plane whether any node was declared lost. Each node honours
  a refusal as the daemon does: it sends none of its heartbeats that fall due before the
  Retry-After (times a random 1 to 2), and the bench counts them as deferred.
- restart: every node heartbeats like a daemon (backing off with jitter and honouring
  Retry-After after a failure, never registering again); the bench stops the control plane with
  SIGTERM, starts it again on the same store and port, and measures the time until every node has
  heartbeated since and is ACTIVE.

Each phase prints one row: achieved rates, latency percentiles of the accepted requests and the
server's CPU time (the overload also per 10 s). The clients write pre-encoded HTTP/1.1 requests
on raw trio sockets, so that they cost the shared CPU little; they share the machine with the
server, at `--clients-nice` (10 by default), so that the server, not the fleet it stands in for,
gets the CPU when both want it.

To run it:

    .venv/bin/python bench/heartbeats.py --nodes 5000 --interval 15 --duration 30
    .venv/bin/python bench/heartbeats.py --nodes 2000 --phases saturation,overload
    .venv/bin/python bench/heartbeats.py --nodes 10000 --interval 30 --phases restart

With `--store postgresql://USER@HOST/DB` the control plane keeps its state in that PostgreSQL
database (an empty one: the bench registers its nodes afresh) instead of a fresh SQLite file. The
server CPU columns count the control plane's process alone, not PostgreSQL's.
"""

from __future__ import annotations

import argparse
import ctypes
import itertools
import json
import multiprocessing
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import heartbeat_clients as clients

ADMIN_TOKEN = "bench-admin-" + "a" * 32
JOIN_TOKEN = "bench-join-" + "j" * 32
READY = re.compile(r"listening on http://([\d.]+):(\d+)")
PHASES = ("heartbeat", "empty", "saturation", "rate", "overload", "restart")
# Open files the control plane needs besides its connections: the store, its log, listeners,
# pipes, the bench's admin calls.
SPARE_FILES = 50


def _die_with_the_bench() -> None:
    """Runs in the control plane's process before it starts: when the bench dies, even by
    SIGKILL, the control plane gets SIGTERM instead of holding its port on."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _cpu_seconds(pid: int) -> float:
    """The user and system CPU time of process `pid`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ControlPlane:
    """`navarch control-plane` as a subprocess, with its output in a log file."""

    def __init__(self, data: Path, config: Path, store: str) -> None:
        self.data = data
        self.config = config
        self.store = store
        self.log = data / "control-plane.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.host = "127.0.0.1"
        self.port = 0

    def start(self) -> None:
        """Starts it (on the port it had before, if any) and waits until it leads."""
        offset = self.log.stat().st_size if self.log.exists() else 0
        env = {**os.environ, "NAVARCH_ADMIN_TOKEN": ADMIN_TOKEN, "NAVARCH_JOIN_TOKEN": JOIN_TOKEN}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "navarch", "control-plane"),
                    *("--config", str(self.config), "--listen", f"{self.host}:{self.port}"),
                    *(("--store", self.store) if self.store else ("--data-dir", str(self.data))),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_die_with_the_bench,
            )
        deadline = time.monotonic() + 60
        while (match := READY.search(self._log_from(offset))) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self._log_from(offset)[-2000:]
                raise SystemExit(f"the control plane did not start; its output:\n{tail}")
            time.sleep(0.05)
        self.host, self.port = match.group(1), int(match.group(2))
        self._wait_for_leader()

    def _log_from(self, offset: int) -> str:
        with self.log.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def _wait_for_leader(self) -> None:
        """On PostgreSQL the first term begins after the ready line, and until then the control
        plane refuses registrations."""
        deadline = time.monotonic() + 60
        url = f"http://{self.host}:{self.port}/readyz?role=leader"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the control plane did not lead within 60 s") from None
                time.sleep(0.2)

    def stop(self) -> float:
        """Stops it with SIGTERM (SIGKILL after 60 s); returns the seconds it took."""
        started = time.monotonic()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return time.monotonic() - started

    def cpu_seconds(self) -> float:
        assert self.process is not None
        return _cpu_seconds(self.process.pid)

    def call(self, method: str, body: dict[str, object]) -> dict[str, Any]:
        """An admin RPC; a refusal or a connection failure is retried for up to 60 s."""
        deadline = time.monotonic() + 60
        request = urllib.request.Request(
            f"http://{self.host}:{self.port}{clients.SERVICE}{method}",
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {ADMIN_TOKEN}",
            },
        )
        while True:
            try:
                with urllib.request.urlopen(request, timeout=30) as reply:
                    answer: dict[str, Any] = json.loads(reply.read())
                    return answer
            except urllib.error.HTTPError as exc:
                if exc.code != 503 or time.monotonic() > deadline:
                    raise SystemExit(f"{method}: HTTP {exc.code} {exc.read()[:300]!r}") from None
                time.sleep(float(exc.headers.get("Retry-After") or 1))
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{method}: {exc}") from None
                time.sleep(0.5)


class Fleet:
    """The client processes, each with its share of the nodes."""

    def __init__(self, nodes: int, workers: int, host: str, port: int, nice: int = 0) -> None:
        node_ids = [f"bench-{i:05d}" for i in range(nodes)]
        self.nodes = nodes
        self.pipes: list[Pipe] = []
        self.processes: list[multiprocessing.Process] = []
        for w in range(workers):
            parent, child = multiprocessing.Pipe()
            process = multiprocessing.Process(
                target=clients.run, args=(node_ids[w::workers], host, port, JOIN_TOKEN, child)
            )
            process.start()
            assert process.pid is not None
            if nice:
                os.setpriority(os.PRIO_PROCESS, process.pid, nice)
            self.pipes.append(parent)
            self.processes.append(process)

    def cpu_seconds(self) -> float:
        return sum(_cpu_seconds(p.pid) for p in self.processes if p.pid is not None)

    def send(self, *command: object) -> None:
        for pipe in self.pipes:
            pipe.send(command)

    def gather(self) -> list[Any]:
        answers = []
        for pipe, process in zip(self.pipes, self.processes, strict=True):
            while not pipe.poll(1):
                if not process.is_alive():
                    raise SystemExit(f"a client process failed (exit status {process.exitcode})")
            answers.append(pipe.recv())
        return answers

    def stop(self) -> None:
        for pipe, process in zip(self.pipes, self.processes, strict=True):
            if process.is_alive():
                try:
                    pipe.send(("exit",))
                except OSError:
                    pass
        for process in self.processes:
            process.join(timeout=2)
            if process.is_alive():
                process.terminate()
                process.join()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


HEADER = (
    f"{'phase':<11} {'offered/s':>9} {'accepted/s':>10} {'refused/s':>9} {'errors':>6} "
    f"{'missed':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'CPU ms/req':>10} {'server CPU':>10}"
    f" {'client CPU':>10}"
)


class Bench:
    def __init__(self, args: argparse.Namespace, server: ControlPlane, fleet: Fleet) -> None:
        self.args = args
        self.server = server
        self.fleet = fleet
        self.saturation_rate: float | None = None
        self.deferred = 0
        self.cpu_per_request: dict[str, float] = {}
        # The client processes' CPU time over the last phase.
        self.client_cpu = 0.0
        # The server's CPU seconds in each 10 s of the last phase.
        self.cpu_steps: list[float] = []

    def _run(
        self, command: tuple[object, ...], duration: float
    ) -> tuple[list[clients.Row], int, Counter[str], float]:
        """Sends a phase to the clients; returns their rows, missed sends, errors and the server's
        CPU seconds over the phase."""
        self.fleet.send("touch")
        self.fleet.gather()
        start = time.time() + 1.0
        self.fleet.send(*command, start)
        time.sleep(max(0.0, start - time.time()))
        cpu, client_cpu = self.server.cpu_seconds(), self.fleet.cpu_seconds()
        steps = [cpu]
        for step in range(1, int(duration // 10) + 1):
            time.sleep(max(0.0, start + step * 10 - time.time()))
            steps.append(self.server.cpu_seconds())
        self.cpu_steps = [after - before for before, after in itertools.pairwise(steps)]
        time.sleep(max(0.0, start + duration - time.time()))
        cpu = self.server.cpu_seconds() - cpu
        self.client_cpu = self.fleet.cpu_seconds() - client_cpu
        rows: list[clients.Row] = []
        missed = 0
        errors: Counter[str] = Counter()
        for answer in self.fleet.gather():
            part, part_missed, part_errors = answer
            rows += part
            missed += part_missed
            errors += part_errors
        self.deferred = errors.pop(clients.DEFERRED, 0)
        return rows, missed, errors, cpu

    def _row(
        self,
        name: str,
        offered: str,
        rows: list[clients.Row],
        missed: int,
        errors: Counter[str],
        cpu: float,
        duration: float,
    ) -> list[float]:
        accepted = [latency for _, latency, outcome in rows if outcome == clients.OK]
        refused = sum(1 for _, _, outcome in rows if outcome == clients.REFUSED)
        failed = sum(1 for _, _, outcome in rows if outcome == clients.ERROR)
        answered = max(1, len(accepted) + refused)
        self.cpu_per_request[name] = cpu / answered * 1000
        print(
            f"{name:<11} {offered:>9} {len(accepted) / duration:10.0f} {refused / duration:9.0f} "
            f"{failed:6d} {missed:6d} {_percentile(accepted, 0.5) * 1000:8.2f} "
            f"{_percentile(accepted, 0.99) * 1000:8.2f} {max(accepted, default=0) * 1000:8.1f} "
            f"{cpu / answered * 1000:10.3f} {cpu / duration:10.0%} "
            f"{self.client_cpu / duration:10.0%}",
            flush=True,
        )
        for error, count in errors.most_common(3):
            print(f"  {count} x {error}")
        return accepted

    def paced(self, name: str, kind: str, rate: float, duration: float) -> list[clients.Row]:
        period = self.fleet.nodes / rate
        rows, missed, errors, cpu = self._run(("paced", kind, period, duration), duration)
        self._row(name, f"{rate:.0f}", rows, missed, errors, cpu, duration)
        return rows

    def heartbeat(self) -> None:
        self.paced(
            "heartbeat", "heartbeat", self.fleet.nodes / self.args.interval, self.args.duration
        )

    def empty(self) -> None:
        self.paced("empty", "empty", self.fleet.nodes / self.args.interval, self.args.duration)

    def rate(self) -> None:
        self.paced("rate", "heartbeat", self.args.rate, self.args.duration)

    def saturation(self) -> None:
        duration = self.args.duration
        per_worker = max(1, self.args.connections // len(self.fleet.pipes))
        rows, missed, errors, cpu = self._run(("closed", per_worker, duration), duration)
        accepted = self._row("saturation", "closed", rows, missed, errors, cpu, duration)
        self.saturation_rate = len(accepted) / duration
        print(
            f"  saturation: {self.saturation_rate:.0f} heartbeats/s accepted, closed loop over "
            f"{per_worker * len(self.fleet.pipes)} connections"
        )

    def overload(self) -> None:
        rate = self.args.overload_rate
        if rate is None:
            assert self.saturation_rate is not None  # _arguments checks it ran before
            rate = 2 * self.saturation_rate
        duration = self.args.overload_duration
        rows = self.paced("overload", "daemon", rate, duration)
        accepted = [lat for _, lat, outcome in rows if outcome == clients.OK]
        refused = [lat for _, lat, outcome in rows if outcome == clients.REFUSED]
        goodput = len(accepted) / duration
        saturation = self.saturation_rate
        against = (
            f" = {goodput / saturation:.0%} of the saturation rate {saturation:.0f}/s"
            if saturation
            else " (no saturation phase in this run)"
        )
        print(
            f"  offered {rate:.0f}/s for {duration:g} s, sent {len(rows) / duration:.0f}/s: "
            f"goodput {goodput:.0f}/s{against}; "
            f"accepted {len(accepted)}, max {max(accepted, default=0) * 1000:.0f} ms, "
            f"p99 {_percentile(accepted, 0.99) * 1000:.1f} ms; refused {len(refused)}, "
            f"p99 {_percentile(refused, 0.99) * 1000:.1f} ms; deferred by Retry-After "
            f"{self.deferred}"
        )
        buckets = Counter((int(sent // 10), outcome) for sent, _, outcome in rows)
        print(
            "  accepted/refused per s, server CPU, in each 10 s of the phase: "
            + " ".join(
                f"{buckets[i, clients.OK] / 10:.0f}/{buckets[i, clients.REFUSED] / 10:.0f}"
                f" {cpu / 10:.0%}"
                for i, cpu in enumerate(self.cpu_steps)
            )
        )
        self.check_fleet("after overload")

    def restart(self) -> None:
        interval = self.args.interval
        self.fleet.send("daemons", interval)
        time.sleep(interval + 2)
        summary = self.server.call("GetFleetSummary", {})
        active_before = summary.get("statuses", {}).get("active", 0)
        stopped_at = time.time()
        stop_s = self.server.stop()
        self.server.start()
        ready_s = time.time() - stopped_at
        since = datetime.fromtimestamp(stopped_at, UTC)
        deadline = time.monotonic() + self.args.restart_timeout
        back_s = None
        active = 0
        while time.monotonic() < deadline:
            oldest = self.server.call("ListNodes", {"orderBy": "last_heartbeat", "pageSize": 1})
            nodes = oldest.get("nodes") or [{}]
            heard = nodes[0].get("lastHeartbeatAt")
            summary = self.server.call("GetFleetSummary", {})
            active = summary.get("statuses", {}).get("active", 0)
            if heard and datetime.fromisoformat(heard) >= since and active == self.fleet.nodes:
                back_s = time.time() - stopped_at
                break
            time.sleep(0.5)
        cpu = self.server.cpu_seconds()
        self.fleet.send("stop")
        counts: Counter[str] = Counter(dict.fromkeys(clients.DAEMON_OUTCOMES, 0))
        for answer in self.fleet.gather():
            counts.update(answer)
        back = (
            f"{back_s:.1f} s"
            if back_s is not None
            else f"not within {self.args.restart_timeout:g} s ({active} ACTIVE then)"
        )
        print(
            f"{'restart':<11} {self.fleet.nodes} nodes ({active_before} ACTIVE before): stopped in "
            f"{stop_s:.1f} s, ready again {ready_s:.1f} s after SIGTERM, every node heartbeated "
            f"and ACTIVE again {back} after SIGTERM; new control plane's CPU {cpu:.1f} s",
            flush=True,
        )
        print("  clients: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
        self.check_fleet("after restart")

    def check_fleet(self, when: str) -> None:
        """Prints the fleet's statuses and the nodes the heartbeat monitor declared lost."""
        summary = self.server.call("GetFleetSummary", {})
        statuses: dict[str, int] = summary.get("statuses", {})
        lost = reregistered = 0
        before = ""
        while True:
            page = self.server.call(
                "ListEvents",
                {
                    "kinds": ["node.status_changed", "node.reregistered", "node.taken_over"],
                    "limit": 1000,
                    **({"before": before} if before else {}),
                },
            )
            events: list[dict[str, str]] = page.get("events", [])
            for event in events:
                if event.get("kind") == "node.status_changed":
                    lost += event.get("actor") == "heartbeat-monitor"
                else:
                    reregistered += 1
            before = str(page.get("nextBefore", ""))
            if not before or not events:
                break
        print(
            f"  fleet {when}: {summary.get('nodes', 0)} nodes, "
            + ", ".join(f"{n} {status}" for status, n in statuses.items())
            + f"; declared lost by the heartbeat monitor: {lost}; registered again: "
            f"{reregistered}",
            flush=True,
        )


def _check_limits(connections: int) -> int:
    """Raises this process's open-file limit (which the control plane and the clients inherit)
    to its hard limit; exits with what to do when the control plane could not hold
    `connections` connections, or loopback has too few ephemeral ports for them."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = connections + SPARE_FILES
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(
            f"the control plane needs about {needed} open files but the hard limit is {hard}: "
            "raise it (ulimit -Hn as root, or docker run --ulimit nofile=65536) or run fewer nodes"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    if high - low + 1 < connections:
        raise SystemExit(
            f"{connections} connections need as many ephemeral ports, but "
            f"net.ipv4.ip_local_port_range has {high - low + 1}: widen it or run fewer nodes"
        )
    return hard


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10.0, help="heartbeat interval, seconds")
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds per phase but overload and restart"
    )
    parser.add_argument(
        "--phases",
        default="heartbeat,empty",
        help=f"comma-separated, run in this order: {','.join(PHASES)}",
    )
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument(
        "--clients-nice",
        type=int,
        default=10,
        help="the client processes' nice value: they stand in for remote machines, so the "
        "server gets the CPU first (0 to share it evenly)",
    )
    parser.add_argument(
        "--connections", type=int, default=64, help="closed-loop connections of saturation"
    )
    parser.add_argument("--rate", type=float, help="heartbeats/s offered by the rate phase")
    parser.add_argument(
        "--overload-rate", type=float, help="heartbeats/s offered; default 2 x saturation"
    )
    parser.add_argument("--overload-duration", type=float, default=60.0)
    parser.add_argument(
        "--restart-timeout",
        type=float,
        default=180.0,
        help="seconds to wait for every node to be back after the restart",
    )
    parser.add_argument(
        "--store", default="", help="the store's URL (postgresql://...); default: a SQLite file"
    )
    args = parser.parse_args()
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = sorted(set(args.phases) - set(PHASES))
    if unknown:
        parser.error(f"--phases: unknown {', '.join(unknown)}; choose from {', '.join(PHASES)}")
    if "empty" in args.phases and {"overload", "restart"} & set(args.phases):
        parser.error(
            "--phases: the empty phase runs with a heartbeat_timeout longer than the run, which "
            "would hide nodes lost in overload or restart; run those in a separate run"
        )
    if "rate" in args.phases and args.rate is None:
        parser.error("--phases rate needs --rate HEARTBEATS_PER_SECOND")
    if (
        "overload" in args.phases
        and args.overload_rate is None
        and "saturation" not in args.phases[: args.phases.index("overload")]
    ):
        parser.error("--phases overload needs --overload-rate, or saturation before it")
    if args.nodes < 1 or args.workers < 1 or args.interval <= 0:
        parser.error("--nodes, --workers and --interval must be positive")
    return args


def main() -> None:
    args = _arguments()
    per_worker = -(-args.nodes // args.workers)
    saturating = args.connections if "saturation" in args.phases else 0
    files = _check_limits(args.nodes + saturating)
    # SIGTERM ends the bench as Ctrl-C does, through the cleanup below.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    empty = "empty" in args.phases
    timeout = "1d" if empty else f"{3 * args.interval:g}s"
    print(
        f"nodes {args.nodes} ({per_worker} per client process, {args.workers} processes at "
        f"nice {args.clients_nice}), "
        f"interval {args.interval:g}s, heartbeat_timeout {timeout}"
        + (" (longer than the run: no node goes lost in the empty phase)" if empty else "")
        + f", phases {','.join(args.phases)}, store {'postgresql' if args.store else 'sqlite'}; "
        f"open files {files}, somaxconn {Path('/proc/sys/net/core/somaxconn').read_text().strip()}"
        f"; at start {_load()}",
        flush=True,
    )
    data = Path(tempfile.mkdtemp(prefix="navarch-bench-"))
    server = fleet = None
    try:
        config = data / "bench.toml"
        config.write_text(
            f'[server]\nheartbeat_interval = "{args.interval:g}s"\n'
            f'heartbeat_timeout = "{timeout}"\n'
        )
        server = ControlPlane(data, config, args.store)
        server.start()
        registering = time.monotonic()
        fleet = Fleet(args.nodes, args.workers, server.host, server.port, args.clients_nice)
        fleet.gather()
        print(f"{args.nodes} registrations in {time.monotonic() - registering:.1f} s", flush=True)
        bench = Bench(args, server, fleet)
        if set(args.phases) - {"restart"}:
            print(HEADER)
            print(
                "(latencies of accepted requests; missed: sends skipped because the node's "
                "previous request was still unanswered)",
                flush=True,
            )
        for phase in args.phases:
            getattr(bench, phase)()
        if "heartbeat" in bench.cpu_per_request and "empty" in bench.cpu_per_request:
            ratio = bench.cpu_per_request["heartbeat"] / bench.cpu_per_request["empty"]
            print(f"heartbeat / empty request, server CPU per request: {ratio:.2f}x")
        if empty:
            bench.check_fleet("at the end")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        if fleet is not None:
            fleet.stop()
        if server is not None:
            server.stop()
        shutil.rmtree(data, ignore_errors=True)
        print(f"at end {_load()}", flush=True)


if __name__ == "__main__":
    main()
