"""What the dashboard's node page reads, over real HTTP: the GPUs' latest readings, and each health
report with its XIDs and the rules that judged it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from support.serving import post, serving

T0 = "2026-01-01T00:00:00Z"


async def _call(client: httpx.AsyncClient, method: str, body: Any) -> dict[str, Any]:
    answer = await post(client, method, body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def test_the_node_shows_its_gpus_latest_readings(tmp_path: Path) -> None:
    async with serving(tmp_path / "navarch.db") as (client, _):
        gpus = [{"index": i, "uuid": f"GPU-{i}", "memoryTotalBytes": 80 << 30} for i in range(2)]
        await _call(client, "RegisterNode", {"nodeId": "n1", "gpus": gpus})
        readings = [
            {
                "index": 1,
                "utilizationPercent": 97.5,
                "memoryUsedBytes": 60 << 30,
                "temperatureC": 81.0,
                "powerWatts": 690.5,
            }
        ]
        metrics = {"cpuPercent": 12.0, "gpus": readings}
        await _call(client, "SendHeartbeat", {"nodeId": "n1", "metrics": metrics})
        node = (await _call(client, "GetNode", {"nodeId": "n1"}))["node"]
        assert node["gpus"][1]["memoryTotalBytes"] == 80 << 30
        assert node["metrics"]["gpus"] == readings
        assert "lastHeartbeatAt" in node


async def test_each_health_report_names_its_xids_and_the_rules_that_judged_it(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path / "navarch.db") as (client, _):
        await _call(client, "RegisterNode", {"nodeId": "n1"})
        await _call(client, "PauseRemediation", {"reason": "read only"})
        thermal = {"type": "HEALTH_EVENT_TYPE_THERMAL", "time": T0, "gpuIndex": 0}
        await _call(client, "ReportHealth", {"nodeId": "n1", "events": [thermal]})
        xids = [
            {"type": "HEALTH_EVENT_TYPE_XID", "time": T0, "gpuIndex": 3, "xid": 79},
            {"type": "HEALTH_EVENT_TYPE_XID", "time": T0, "gpuIndex": 1, "xid": 13},
            thermal,
        ]
        await _call(client, "ReportHealth", {"nodeId": "n1", "events": xids})
        reported = await _call(client, "ListEvents", {"nodeId": "n1", "kinds": ["health.reported"]})
        xid_report, quiet_report = reported["events"]
        assert quiet_report["details"] == {"count": "1", "types": "HEALTH_EVENT_TYPE_THERMAL"}
        details = xid_report["details"]
        assert details["count"] == "3"
        assert details["types"] == "HEALTH_EVENT_TYPE_THERMAL,HEALTH_EVENT_TYPE_XID"
        assert details["xids"] == "3:79,1:13"
        # XID 79 and XID 13 matched rules of the default policy; 79's decides the node.
        rules = details["rules"].split(",")
        assert len(rules) == 2
        assert details["rule"] == rules[0]
        changed = await _call(
            client, "ListEvents", {"nodeId": "n1", "kinds": ["node.health_changed"]}
        )
        # Unknown to healthy with the first report, then unhealthy with the second.
        health_changed, first_change = changed["events"]
        assert "rule" not in first_change["details"]
        assert health_changed["details"]["rule"] == details["rule"]
        assert health_changed["details"]["to"] == "HEALTH_STATUS_UNHEALTHY"
        status = await _call(
            client, "ListEvents", {"nodeId": "n1", "kinds": ["node.status_changed"]}
        )
        assert status["events"][0]["details"]["rule"] == details["rule"]
        node = (await _call(client, "GetNode", {"nodeId": "n1"}))["node"]
        assert [e.get("xid", 0) for e in node["lastHealthEvents"]] == [79, 13, 0]
