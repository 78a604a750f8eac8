"""GetFleetSummary: the fleet page's counts, breakers, pools, events and history, over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from support.serving import ADMIN_TOKEN, post, serving
from support.store_snapshot import snapshot

T0 = "2026-01-01T00:00:00Z"


def _gpus(count: int) -> list[dict[str, Any]]:
    return [{"index": i, "uuid": f"GPU-{i}"} for i in range(count)]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def _call(client: httpx.AsyncClient, method: str, body: Any) -> dict[str, Any]:
    answer = await post(client, method, body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def _xid(client: httpx.AsyncClient, node_id: str, code: int, gpu: int = 0) -> None:
    event = {"type": "HEALTH_EVENT_TYPE_XID", "time": T0, "gpuIndex": gpu, "xid": code}
    await _call(client, "ReportHealth", {"nodeId": node_id, "events": [event]})


async def _fleet(client: httpx.AsyncClient) -> None:
    """Pool a: four nodes of 8 GPUs; pool b: two of 4; one node of no pool and no GPUs."""
    for i in range(4):
        await _call(client, "RegisterNode", {"nodeId": f"a-{i}", "pool": "a", "gpus": _gpus(8)})
    for i in range(2):
        await _call(client, "RegisterNode", {"nodeId": f"b-{i}", "pool": "b", "gpus": _gpus(4)})
    await _call(client, "RegisterNode", {"nodeId": "loose"})
    await _call(client, "IssueCommand", {"nodeId": "b-1", "type": "COMMAND_TYPE_CORDON"})
    for i in range(4):
        await _call(client, "SendHeartbeat", {"nodeId": f"a-{i}"})


async def test_the_summary_counts_the_fleet_as_it_is(tmp_path: Path) -> None:
    async with serving(tmp_path / "navarch.db") as (client, _):
        await _fleet(client)
        for _ in range(4):
            for kind in ("COMMAND_TYPE_CORDON", "COMMAND_TYPE_UNCORDON"):
                await _call(client, "IssueCommand", {"nodeId": "loose", "type": kind})
        # Paused, the episode waits at its first step and the node stays as the verdict left it.
        await _call(client, "PauseRemediation", {"reason": "look first"})
        # XID 79: the GPU fell off the bus; the node is unhealthy and is to be replaced.
        await _xid(client, "a-0", 79, gpu=3)
        summary = await _call(client, "GetFleetSummary", {})
        assert summary["nodes"] == 7
        assert summary["statuses"] == {"active": 5, "cordoned": 1, "unhealthy": 1}
        assert summary["healths"] == {"unknown": 6, "unhealthy": 1}
        assert summary["gpusTotal"] == 4 * 8 + 2 * 4
        # Every GPU of a node judged unhealthy is out of service.
        assert summary["gpusUnhealthy"] == 8
        remediations = await _call(client, "ListRemediations", {"limit": 10})
        (episode,) = remediations["remediations"]
        assert summary["openRemediations"] == 1
        assert episode["step"] == "REMEDIATION_STEP_PENDING"
        assert summary["remediationSteps"] == [{"step": "REMEDIATION_STEP_PENDING", "count": 1}]
        assert summary["paused"] is True
        # No pool is configured, and none has an open breaker or a pause of its own.
        assert "breakers" not in summary
        latest = await _call(client, "ListEvents", {"limit": 20})
        assert summary["recentEvents"] == latest["events"]
        assert len(summary["recentEvents"]) == 20
        assert summary["recentEvents"][0]["kind"].startswith("remediation.")


async def test_an_open_breaker_shows_its_reason_and_since_and_a_pause_its_pool(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path / "navarch.db") as (client, _):
        await _fleet(client)
        for node_id in ("a-0", "a-1", "a-2"):
            await _xid(client, node_id, 79)
        controls = (await _call(client, "ListRemediations", {}))["controls"]
        assert controls["openBreakers"] == ["a"]
        await _call(client, "PauseRemediation", {"pool": "b", "reason": "maintenance"})
        summary = await _call(client, "GetFleetSummary", {})
        opened = await _call(client, "ListEvents", {"kinds": ["remediation.breaker_opened"]})
        (event,) = opened["events"]
        a, b = summary["breakers"]
        assert a == {"pool": "a", "open": True, "reason": event["reason"], "since": a["since"]}
        # Stamped just before the event that says it opened.
        assert _time(event["time"]) - _time(a["since"]) < timedelta(seconds=1)
        assert "more than 50% of pool a" in a["reason"]
        assert b == {"pool": "b", "paused": True}
        assert summary["openRemediations"] == 3
        assert summary["healths"]["unhealthy"] == 3
        assert summary["gpusUnhealthy"] == 24
        held = [s for s in summary["remediationSteps"] if s["step"] == "REMEDIATION_STEP_HELD"]
        assert held == [{"step": "REMEDIATION_STEP_HELD", "count": 1}]
        await _call(client, "ResetBreaker", {"pool": "a"})
        await _call(client, "PauseRemediation", {"reason": "everyone"})
        summary = await _call(client, "GetFleetSummary", {})
        assert summary["breakers"] == [{"pool": "b", "paused": True}]
        assert summary["paused"] is True


async def test_the_history_starts_with_the_control_plane_and_can_be_asked_for_in_part(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path / "navarch.db") as (client, _):
        summary = await _call(client, "GetFleetSummary", {})
        (first,) = summary["history"]
        # Taken when the control plane started, before any node registered.
        assert first["time"] <= summary["time"]
        assert set(first) == {"time"}
        later = datetime.now(UTC) + timedelta(minutes=1)
        after = await _call(client, "GetFleetSummary", {"historyAfter": later.isoformat()})
        assert "history" not in after
        before = await _call(client, "GetFleetSummary", {"historyAfter": "2000-01-01T00:00:00Z"})
        assert before["history"] == summary["history"]


async def test_a_bad_summary_request_names_its_field_and_changes_nothing(tmp_path: Path) -> None:
    async with serving(tmp_path / "navarch.db", admin_token=ADMIN_TOKEN) as (client, _):
        kept = snapshot(tmp_path / "navarch.db")
        for body, message in [
            ({"historyAfter": "yesterday"}, "historyAfter:"),
            ({"historyAfter": "1960-01-01T00:00:00Z"}, "historyAfter: expected a time from 1970"),
            ({"since": T0}, "unknown field 'since'"),
        ]:
            answer = await post(client, "GetFleetSummary", body, token=ADMIN_TOKEN)
            assert answer.status_code == 400
            assert answer.json()["code"] == "invalid_argument"
            assert message in answer.json()["message"]
        refused = await post(client, "GetFleetSummary", {})
        assert refused.status_code == 401
        assert snapshot(tmp_path / "navarch.db") == kept
