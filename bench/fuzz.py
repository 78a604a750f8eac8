"""Hostile input against a real control plane, for longer than the test suite can afford.

Starts `navarch control-plane` as a subprocess (auth on, a fresh SQLite store), registers a node,
then sends the hostile bodies of the API fuzz test (tests/api/hostile.py) to every method with
every kind of credential until the duration is spent, and then runs schemathesis against
`/openapi.json` with all its checks. A control plane that dies is counted and started again on the
same store. At the end it stops the control plane, starts it again on the same store and counts
the committed rows that did not come back. It prints the figures: requests, server errors (5xx),
crashes and lost rows.

To run it:

    .venv/bin/python bench/fuzz.py --duration 300
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "api")]

from hostile import VALID, bodies  # noqa: E402
from support.control_plane_process import control_plane_process  # noqa: E402
from support.store_snapshot import snapshot  # noqa: E402

from navarch.api.methods import METHODS  # noqa: E402
from navarch.api.wire import SERVICE_PATH  # noqa: E402

ADMIN_TOKEN = "fuzz-admin-" + "a" * 32
JOIN_TOKEN = "fuzz-join-" + "j" * 32
ENV = {"NAVARCH_ADMIN_TOKEN": ADMIN_TOKEN, "NAVARCH_JOIN_TOKEN": JOIN_TOKEN}
SOFT_STATE = ("last_heartbeat_at", "metrics")


class Figures:
    def __init__(self) -> None:
        self.requests = 0
        self.statuses: Counter[int] = Counter()
        self.server_errors: list[str] = []
        self.crashes = 0
        self.lost_rows = 0
        self.schemathesis = "not run"

    def show(self) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        return "\n".join(
            [
                f"requests       {self.requests}",
                f"statuses       {statuses}",
                f"server errors  {len(self.server_errors)}",
                f"crashes        {self.crashes}",
                f"lost rows      {self.lost_rows}",
                f"schemathesis   {self.schemathesis}",
            ]
        )


@contextlib.contextmanager
def _serving(data: Path) -> Iterator[tuple[subprocess.Popen[str], httpx.Client, Path]]:
    args = ("--listen", "127.0.0.1:0", "--data-dir", str(data))
    with (
        control_plane_process(*args, env=ENV) as (process, url, store),
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield process, client, Path(store)


def _post(client: httpx.Client, method: str, body: bytes, authorization: str) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    return client.post(SERVICE_PATH + method, content=body, headers=headers)


def hostile_phase(data: Path, deadline: float, examples: int, figures: Figures) -> None:
    while time.monotonic() < deadline:
        with _serving(data) as (process, client, _):
            _attack(process, client, deadline, examples, figures)
            if process.poll() is not None:
                figures.crashes += 1


def _attack(
    process: subprocess.Popen[str],
    client: httpx.Client,
    deadline: float,
    examples: int,
    figures: Figures,
) -> None:
    joined = _post(client, "RegisterNode", b'{"nodeId": "n1"}', f"Bearer {JOIN_TOKEN}")
    credentials = ["", f"Bearer {ADMIN_TOKEN}", f"Bearer {JOIN_TOKEN}"]
    if joined.status_code == 200:
        credentials.append(f"Bearer {joined.json().get('nodeToken', '')}")

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def attack(data: st.DataObject) -> None:
        method = data.draw(st.sampled_from(sorted(METHODS)))
        credential = data.draw(st.sampled_from(credentials))
        body = data.draw(bodies(method))
        if time.monotonic() >= deadline or process.poll() is not None:
            return
        try:
            response = _post(client, method, body, credential)
        except httpx.HTTPError as exc:
            figures.server_errors.append(f"{method}: {exc!r}")
            return
        figures.requests += 1
        figures.statuses[response.status_code] += 1
        if response.status_code >= 500:
            figures.server_errors.append(f"{method}: {response.text[:200]}")

    attack()


def schemathesis_phase(data: Path, examples: int, figures: Figures) -> None:
    if shutil.which("schemathesis", path=str(Path(sys.executable).parent)) is None:
        figures.schemathesis = "not installed"
        return
    with _serving(data) as (process, client, _):
        url = str(client.base_url)
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "run",
                f"{url}/openapi.json",
                "--url",
                url,
                "--checks",
                "all",
                "--max-examples",
                str(examples),
                "--header",
                f"Authorization: Bearer {ADMIN_TOKEN}",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=data,  # schemathesis leaves its cache and reports where it runs
        )
        if process.poll() is not None:
            figures.crashes += 1
        output = done.stdout + done.stderr
        summary = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed)", line)]
        figures.schemathesis = f"exit {done.returncode}; " + (
            summary[-1].strip(" =") if summary else output.strip().splitlines()[-1]
        )
        if done.returncode != 0:
            print(output[-6000:], file=sys.stderr)
        metrics = client.get("/metrics").text
        for line in metrics.splitlines():
            match = re.match(r'navarch_api_requests_total\{code="(\w+)",method="\w+"\} (\S+)', line)
            if match is not None:
                count = int(float(match.group(2)))
                figures.requests += count
                if match.group(1) in ("internal", "unknown"):
                    figures.server_errors.extend(["schemathesis: internal"] * count)


def restart_phase(data: Path, figures: Figures) -> None:
    """Counts the rows of the stopped store that a restart does not keep."""
    store = data / "navarch.db"
    if not store.exists():
        store = next(data.glob("*.db"))
    before = snapshot(store, ignore=SOFT_STATE)
    with _serving(data) as (process, client, path):
        after = snapshot(path, ignore=SOFT_STATE)
        for method in sorted(METHODS):
            response = _post(client, method, VALID_BODY[method], f"Bearer {ADMIN_TOKEN}")
            if response.status_code >= 500:
                figures.server_errors.append(f"after restart, {method}: {response.text[:200]}")
        if process.poll() is not None:
            figures.crashes += 1
    for table, rows in before.items():
        kept = set(after.get(table, []))
        figures.lost_rows += sum(1 for row in rows if row not in kept)


VALID_BODY = {method: json.dumps(body).encode() for method, body in VALID.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=120, help="seconds of hostile input")
    parser.add_argument("--examples", type=int, default=2000, help="examples per hypothesis run")
    parser.add_argument("--schemathesis-examples", type=int, default=100, help="per operation")
    parser.add_argument("--no-schemathesis", action="store_true")
    args = parser.parse_args()
    figures = Figures()
    with tempfile.TemporaryDirectory(prefix="navarch-fuzz-") as tmp:
        data = Path(tmp)
        started = time.monotonic()
        hostile_phase(data, started + args.duration, args.examples, figures)
        if not args.no_schemathesis:
            schemathesis_phase(data, args.schemathesis_examples, figures)
        restart_phase(data, figures)
        print(f"navarch API fuzz, {time.monotonic() - started:.0f}s")
        print(figures.show())
        for error in figures.server_errors[:20]:
            print("  server error:", error)
    if figures.server_errors or figures.crashes or figures.lost_rows:
        sys.exit(1)


if __name__ == "__main__":
    main()
