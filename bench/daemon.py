"""Memory and CPU of `navarch daemon` at rest, on a machine with 8 (fake) GPUs.

Starts `navarch control-plane` (loopback, a fresh SQLite store, a 30 s heartbeat) and one real
`navarch daemon` subprocess per `--daemon` command, each reading 8 GPUs of the fake
libnvidia-ml (built with the C compiler). Once every daemon has sent a heartbeat and a short
settling time has passed, it samples each daemon's resident memory (VmRSS) and CPU time (user and
system, from /proc) over the measuring window, and prints one row per daemon: RSS at the end and
its peak during the window in MiB, proportional set size (PSS), and CPU as a percentage of one
core.

To measure this tree's daemon:

    .venv/bin/python bench/daemon.py --seconds 60

To measure another tree's daemon in the same run (the daemons run side by side, against the same
control plane, in the same window), give each daemon's command; `{python}` is this interpreter:

    .venv/bin/python bench/daemon.py --seconds 60 \\
        --daemon "env PYTHONPATH=/tmp/before {python} -m navarch daemon" \\
        --daemon "{python} -m navarch daemon"

Linux only (it reads /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVICE = "/navarch.v1.ControlPlaneService/"
READY = re.compile(r"listening on (http://\S+)")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def start_control_plane(directory: Path, interval: float) -> tuple[subprocess.Popen[str], str]:
    config = directory / "control-plane.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:0"\nheartbeat_interval = "{interval:g}s"\n'
        f'\n[store]\npath = "{directory / "navarch.db"}"\n'
    )
    env = {**os.environ, "NAVARCH_ADMIN_TOKEN": "", "NAVARCH_JOIN_TOKEN": ""}
    process = subprocess.Popen(
        [sys.executable, "-m", "navarch", "control-plane", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=open(directory / "control-plane.log", "w"),  # noqa: SIM115
        text=True,
        cwd=REPO,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = READY.search(line)
    if match is None:
        process.kill()
        sys.exit(f"the control plane did not start: {line!r}; see {directory}/control-plane.log")
    return process, match.group(1)


def start_daemon(
    command: str, index: int, url: str, directory: Path, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], str]:
    node_id = f"bench-daemon-{index}"
    state = directory / node_id
    state.mkdir()
    config = state / "navarch.toml"
    config.write_text(f'[daemon]\nstate_dir = "{state}"\n')
    argv = shlex.split(command.format(python=sys.executable))
    argv += ["--control-plane", url, "--node-id", node_id, "--config", str(config)]
    process = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=open(state / "daemon.log", "wb"),  # noqa: SIM115
        # Not the repository: `python -m` puts the working directory first on the path.
        cwd=state,
        env=env,
    )
    return process, node_id


def last_heartbeat(url: str, node_id: str) -> str | None:
    request = urllib.request.Request(
        url + SERVICE + "GetNode",
        data=json.dumps({"nodeId": node_id}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            node = json.loads(reply.read())["node"]
    except OSError:
        return None
    value = node.get("lastHeartbeatAt") or node.get("lastHeartbeat")
    return str(value) if value else None


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # utime and stime are fields 14 and 15 of stat; the split starts at field 3.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def pss_bytes(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    match = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--daemon",
        action="append",
        metavar="COMMAND",
        help='a daemon command, repeatable [default: "{python} -m navarch daemon"]',
    )
    parser.add_argument("--gpus", type=int, default=8, help="fake GPUs per daemon")
    parser.add_argument("--seconds", type=float, default=60.0, help="the measuring window")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds after the heartbeat")
    parser.add_argument("--interval", type=float, default=30.0, help="heartbeat interval, s")
    args = parser.parse_args()
    commands = args.daemon or ["{python} -m navarch daemon"]

    from navarch.testing import build_fake_nvml

    with tempfile.TemporaryDirectory(prefix="navarch-bench-daemon-") as tmp:
        directory = Path(tmp)
        library = build_fake_nvml(directory)
        env = {
            **os.environ,
            "NAVARCH_NVML_LIBRARY": str(library),
            "FAKE_NVML_DEVICES": str(args.gpus),
            "NAVARCH_JOIN_TOKEN": "",
        }
        control_plane, url = start_control_plane(directory, args.interval)
        daemons: list[tuple[str, subprocess.Popen[bytes], str]] = []
        try:
            for index, command in enumerate(commands):
                process, node_id = start_daemon(command, index, url, directory, env)
                daemons.append((command, process, node_id))
            deadline = time.monotonic() + 60
            waiting = {node_id for _, _, node_id in daemons}
            while waiting:
                for command, process, node_id in daemons:
                    if process.poll() is not None:
                        log = (directory / node_id / "daemon.log").read_text()
                        sys.exit(f"daemon {command!r} exited:\n{log}")
                waiting = {n for n in waiting if last_heartbeat(url, n) is None}
                if time.monotonic() > deadline:
                    sys.exit(f"no heartbeat from {sorted(waiting)} within 60 s")
                time.sleep(0.5)
            time.sleep(args.settle)
            start = time.monotonic()
            cpu0 = {node_id: cpu_seconds(p.pid) for _, p, node_id in daemons}
            peak = {node_id: 0 for _, _, node_id in daemons}
            while time.monotonic() - start < args.seconds:
                for _, process, node_id in daemons:
                    peak[node_id] = max(peak[node_id], rss_bytes(process.pid))
                time.sleep(min(1.0, max(0.0, args.seconds - (time.monotonic() - start))))
            elapsed = time.monotonic() - start
            print(
                f"{args.gpus} fake GPUs, heartbeat every {args.interval:g}s, "
                f"{elapsed:.0f}s window after {args.settle:g}s settling; "
                f"load average {os.getloadavg()[0]:.2f}"
            )
            # CPU time comes in clock ticks: one tick over the window is the resolution.
            print(f"CPU resolution {100 / CLOCK_TICKS / elapsed:.3f} % of a core")
            print(f"{'RSS MiB':>8} {'peak MiB':>9} {'PSS MiB':>8} {'CPU %':>7}  daemon")
            for command, process, node_id in daemons:
                cpu = (cpu_seconds(process.pid) - cpu0[node_id]) / elapsed * 100
                rss = rss_bytes(process.pid) / 2**20
                pss = pss_bytes(process.pid)
                pss_text = f"{pss / 2**20:8.1f}" if pss is not None else f"{'-':>8}"
                print(f"{rss:8.1f} {peak[node_id] / 2**20:9.1f} {pss_text} {cpu:7.3f}  {command}")
        finally:
            for _, process, _ in daemons:
                process.terminate()
            for _, process, _ in daemons:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
            control_plane.terminate()
            try:
                control_plane.wait(timeout=10)
            except subprocess.TimeoutExpired:
                control_plane.kill()


if __name__ == "__main__":
    main()
