"""The wire stays byte-compatible: recorded Connect calls replayed against today's control plane.

`data/wire-0.1.0.json` holds every call of a scripted session (each API method, its common errors,
a node's whole life from registration to termination and heartbeat loss) with the reply navarch
0.1.0 gave, byte for byte. The session ran on a manual trio clock with seeded ids, so replaying it
gives the same replies. Node tokens are random, and ids would change if they were ever made in
another order, so both are compared by the place where each first appears, and a request that
names one sends the value this run gave in its place.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import trio
import trio.testing

from navarch.api.app import ControlPlaneApp
from navarch.clock import Clock
from navarch.config import ServerConfig, parse_config
from navarch.controlplane import ControlPlane
from navarch.ids import IdFactory
from navarch.plugins.manager import load_plugins
from navarch.store import SQLiteStore

TRANSCRIPT = Path(__file__).parent / "data" / "wire-0.1.0.json"
CONFIG = """
[providers.fake]
[pools.train]
instance_type = "h100-8x"
min_nodes = 0
max_nodes = 3
scale_interval = "1h"
providers = [{ provider = "fake" }]
[pools.train.health]
auto_replace = false
"""
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
# Where today's reply differs on purpose. Human-readable messages name a status in navarch's own
# words ("cordoned"); the status fields keep their wire names.
EXPLAINED = (("no change: node is NODE_STATUS_CORDONED", "no change: node is cordoned"),)
# Ids (26 characters of Crockford base32) and node tokens.
_VARIABLE = re.compile(r"\b[0-9A-HJKMNP-TV-Z]{26}\b|nvn_[A-Za-z0-9_-]{43}")


def _as_in_0_1_0(method: str, text: str) -> str:
    """Today's reply less what replies gained since 0.1.0, which a client of 0.1.0 ignores:
    ListNodes' total, GetPool's history and decisions, and a `health.reported` event's XIDs and
    rules."""
    value = json.loads(text) if method in ("ListNodes", "GetPool", "ListEvents") else None
    if not isinstance(value, dict):
        return text
    pool = value.get("pool", {})
    added: list[tuple[dict[str, Any], str]] = [(value, "total"), (pool, "history")]
    added.append((pool, "decisions"))
    for event in value.get("events", []):
        if event["kind"] == "health.reported":
            added += [(event["details"], key) for key in ("xids", "rules", "rule")]
    removed = [holder.pop(key) for holder, key in added if key in holder]
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False) if removed else text


def _normalized(text: str, names: dict[str, str]) -> str:
    return _VARIABLE.sub(lambda m: names.setdefault(m.group(0), f"<{len(names)}>"), text)


async def test_recorded_calls_get_the_same_replies(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    steps = json.loads(TRANSCRIPT.read_text())
    t0 = trio.current_time()

    def wall() -> datetime:
        return EPOCH + timedelta(seconds=trio.current_time() - t0)

    config = parse_config(CONFIG, plugins=load_plugins(entry_points=False))
    server = ServerConfig(heartbeat_interval=timedelta(seconds=10))
    recorded_names: dict[str, str] = {}
    replayed_names: dict[str, str] = {}
    # A recorded id or token -> the one this run gave in its place.
    now_called: dict[str, str] = {}
    async with (
        SQLiteStore.open(tmp_path / "n.db", threaded=False) as store,
        ControlPlane.open(
            store,
            server,
            admin_token="admin-token",
            join_token="join-token",
            clock=Clock(wall),
            ids=IdFactory.seeded("wire", wall),
            config=config,
        ) as service,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(ControlPlaneApp(service)), base_url="http://cp"
        ) as client,
    ):
        await trio.testing.wait_all_tasks_blocked()
        for number, step in enumerate(steps):
            if "advance" in step:
                mock_clock.jump(step["advance"])
                await trio.testing.wait_all_tasks_blocked()
                continue

            def now(text: str) -> str:
                return _VARIABLE.sub(lambda m: now_called.get(m.group(0), m.group(0)), text)

            headers = {"Content-Type": step["contentType"]} if step["contentType"] else {}
            if step["token"]:
                headers["Authorization"] = f"Bearer {now(step['token'])}"
            response = await client.request(
                step["http"],
                "/navarch.v1.ControlPlaneService/" + step["method"],
                content=now(step["request"]).encode(),
                headers=headers,
            )
            await trio.testing.wait_all_tasks_blocked()
            where = f"step {number}, {step['method']}"
            assert response.status_code == step["status"], where
            expected = step["response"]
            for before, after in EXPLAINED:
                expected = expected.replace(before, after)
            today = _as_in_0_1_0(step["method"], response.text)
            replied = _normalized(today, replayed_names)
            assert replied == _normalized(expected, recorded_names), where
            then = _VARIABLE.findall(step["response"])
            for old, new in zip(then, _VARIABLE.findall(response.text), strict=True):
                now_called.setdefault(old, new)
