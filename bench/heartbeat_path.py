"""CPU time of one heartbeat in navarch's own code: decode, handle, encode, and the whole ASGI call.

Runs a control plane in this process (auth on, a fresh SQLite file), registers one node with a
join token, and then, with pre-encoded SendHeartbeat bodies (8 GPUs, with readings that differ
from one heartbeat to the next, as a fleet's do, so that no cache answers for them), times each
step on its own and the whole call through the ASGI app as hypercorn would make it, with no socket
and no HTTP parsing. It prints microseconds of process CPU time per heartbeat for each step, the
best of `--rounds` rounds: `limits` is part of `handle`, and `asgi` holds all the others.

To run it for this tree:

    .venv/bin/python bench/heartbeat_path.py

To compare with another tree of navarch (`git worktree add ../before COMMIT`), rounds
interleaved so that both see the same machine:

    .venv/bin/python bench/heartbeat_path.py --against ../before

Each tree then runs in its own process with `PYTHONPATH` set to it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

JOIN_TOKEN = "bench-join-" + "j" * 32
NODE_ID = "gpu-node-1"
STEPS = ("decode", "limits", "handle", "encode", "asgi")


def _bodies(count: int) -> list[bytes]:
    """Heartbeats whose readings all differ, as a fleet's do: no cache can answer for them."""
    bodies = []
    for k in range(count):
        gpus = [
            {
                "index": i,
                "utilizationPercent": 90.0 + (k + i) % 10 * 0.5,
                # Unique to the heartbeat.
                "memoryUsedBytes": 71 * 2**30 + k * 4096,
                "temperatureC": 60.0 + (k * 7 + i) % 15,
                "powerWatts": 600.0 + (k * 3 + i) % 40 * 1.25,
            }
            for i in range(8)
        ]
        metrics = {"cpuPercent": 30.0 + k % 40, "memoryPercent": 62.5, "gpus": gpus}
        bodies.append(json.dumps({"nodeId": NODE_ID, "metrics": metrics}).encode())
    return bodies


def _per_call(run: Callable[[int], None], n: int) -> float:
    started = time.process_time()
    run(n)
    return (time.process_time() - started) / n * 1e6


async def _async_per_call(run: Callable[[int], Awaitable[None]], n: int) -> float:
    started = time.process_time()
    await run(n)
    return (time.process_time() - started) / n * 1e6


async def _measure(n: int, rounds: int) -> dict[str, float]:
    # Imported here: with --against, the process that compares the trees imports neither.
    from navarch.api import limits
    from navarch.api import wire as w
    from navarch.api.app import ControlPlaneApp
    from navarch.api.codec import decode, encode
    from navarch.api.methods import METHODS, call
    from navarch.config import ServerConfig
    from navarch.controlplane import Caller, ControlPlane
    from navarch.store import SQLiteStore

    bodies = _bodies(n)
    method = METHODS["SendHeartbeat"]
    best = dict.fromkeys(STEPS, float("inf"))
    with tempfile.TemporaryDirectory(prefix="navarch-bench-") as tmp:
        async with (
            SQLiteStore.open(Path(tmp) / "navarch.db", threaded=False) as store,
            ControlPlane.open(store, ServerConfig(), join_token=JOIN_TOKEN) as cp,
        ):
            registered = await call(
                cp,
                METHODS["RegisterNode"],
                w.RegisterNodeRequest(node_id=NODE_ID),
                Caller("join"),
            )
            caller = Caller.node(NODE_ID)
            app = ControlPlaneApp(cp)
            requests = [decode(w.SendHeartbeatRequest, b) for b in bodies]
            response = await call(cp, method, requests[0], caller)
            scope = {
                "type": "http",
                "method": "POST",
                "path": "/navarch.v1.ControlPlaneService/SendHeartbeat",
                "headers": [
                    (b"host", b"navarch.test"),
                    (b"authorization", f"Bearer {registered.node_token}".encode()),
                    (b"content-type", b"application/json"),
                ],
            }
            messages = [{"type": "http.request", "body": b, "more_body": False} for b in bodies]
            sent: list[Any] = []

            async def send(message: Any) -> None:
                sent.append(message)

            def decode_all(count: int) -> None:
                for i in range(count):
                    decode(w.SendHeartbeatRequest, bodies[i])

            def check_all(count: int) -> None:
                for i in range(count):
                    limits.check(requests[i])

            async def handle_all(count: int) -> None:
                for i in range(count):
                    await call(cp, method, requests[i], caller)

            def encode_all(count: int) -> None:
                for _ in range(count):
                    encode(response)

            async def asgi_all(count: int) -> None:
                for i in range(count):
                    message = messages[i]

                    async def receive(message: dict[str, Any] = message) -> dict[str, Any]:
                        return message

                    await app(scope, receive, send)
                    sent.clear()

            async def receive_first() -> dict[str, Any]:
                return messages[0]

            await app(scope, receive_first, send)
            if sent[0]["status"] != 200:
                raise SystemExit(f"the heartbeat failed: {sent[-1]['body']!r}")
            sent.clear()
            for _ in range(rounds):
                best["decode"] = min(best["decode"], _per_call(decode_all, n))
                best["limits"] = min(best["limits"], _per_call(check_all, n))
                best["handle"] = min(best["handle"], await _async_per_call(handle_all, n))
                best["encode"] = min(best["encode"], _per_call(encode_all, n))
                best["asgi"] = min(best["asgi"], await _async_per_call(asgi_all, n))
    return best


def _show(label: str, figures: dict[str, float]) -> None:
    cells = "  ".join(f"{step} {figures[step]:6.1f}" for step in STEPS)
    print(f"{label:<24} {cells}  (us of CPU per heartbeat)", flush=True)


def _run_tree(tree: str, n: int, rounds: int) -> dict[str, float]:
    script = str(Path(__file__).resolve())
    done = subprocess.run(
        [sys.executable, script, "--json", "-n", str(n), "--rounds", str(rounds)],
        env={**os.environ, "PYTHONPATH": tree},
        cwd=tree,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"the bench failed in {tree}; its error is above")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20_000, help="heartbeats per step and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best one counts")
    parser.add_argument("--against", help="another navarch tree to compare with, interleaved")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json:
        print(json.dumps(trio.run(_measure, args.n, args.rounds)))
        return
    print(f"load average {os.getloadavg()[0]:.2f}; {args.n} heartbeats per step, best of rounds")
    if args.against is None:
        _show("this tree", trio.run(_measure, args.n, args.rounds))
        return
    here = str(Path(__file__).resolve().parent.parent)
    other = str(Path(args.against).resolve())
    best = {tree: dict.fromkeys(STEPS, float("inf")) for tree in (other, here)}
    for _ in range(args.rounds):
        for tree in best:
            figures = _run_tree(tree, args.n, 1)
            best[tree] = {s: min(best[tree][s], figures[s]) for s in STEPS}
    _show(other, best[other])
    _show(f"{here} (this tree)", best[here])


if __name__ == "__main__":
    main()
