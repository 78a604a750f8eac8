from __future__ import annotations

from pathlib import Path

from support.serving import post, serving

from navarch.api.methods import METHODS
from navarch.api.wire import SERVICE_PATH


async def test_metrics_show_the_fleet_the_calls_and_the_events(tmp_path: Path) -> None:
    async with serving(tmp_path / "navarch.db") as (client, _):
        gpus = [{"index": i, "uuid": f"G{i}"} for i in range(8)]
        await post(client, "RegisterNode", {"nodeId": "n1", "gpus": gpus})
        await post(client, "RegisterNode", {"nodeId": "n2"})
        await post(client, "IssueCommand", {"nodeId": "n2", "type": "COMMAND_TYPE_CORDON"})
        for _ in range(3):
            await post(client, "SendHeartbeat", {"nodeId": "n1"})
        await post(client, "SendHeartbeat", {"nodeId": "ghost"})
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        lines = set(response.text.splitlines())
    expected = {
        'navarch_nodes{health="unknown",status="active"} 1.0',
        'navarch_nodes{health="unknown",status="cordoned"} 1.0',
        'navarch_nodes{health="healthy",status="unhealthy"} 0.0',
        'navarch_gpus{status="active"} 8.0',
        "navarch_node_heartbeat_age_seconds_count 2.0",
        'navarch_events_total{kind="node.registered"} 2.0',
        'navarch_events_total{kind="node.status_changed"} 1.0',
        'navarch_api_requests_total{code="ok",method="SendHeartbeat"} 3.0',
        'navarch_api_requests_total{code="not_found",method="SendHeartbeat"} 1.0',
        'navarch_api_request_duration_seconds_count{method="SendHeartbeat"} 4.0',
    }
    assert expected <= lines
    assert any(line.startswith("navarch_node_heartbeat_age_max_seconds ") for line in lines)
    assert not any("_created" in line for line in lines)


async def test_openapi_describes_every_method(tmp_path: Path) -> None:
    async with serving(tmp_path / "navarch.db") as (client, _):
        response = await client.get("/openapi.json")
        assert response.status_code == 200
        document = response.json()
    served = list(METHODS)
    assert {"RegisterNode", "SendHeartbeat", "IssueCommand", "ListEvents"} <= set(served)
    assert [
        p.removeprefix(SERVICE_PATH) for p in document["paths"] if p.startswith(SERVICE_PATH)
    ] == served
    assert document["openapi"] == "3.1.0"
    schemas = document["components"]["schemas"]
    for method in served:
        request_cls, response_cls = METHODS[method].request, METHODS[method].response
        operation = document["paths"][SERVICE_PATH + method]["post"]
        assert operation["operationId"] == method
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{request_cls.__name__}"}
        reply = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert reply == {"$ref": f"#/components/schemas/{response_cls.__name__}"}
        assert "default" in operation["responses"]
    heartbeat = schemas["SendHeartbeatRequest"]
    assert heartbeat["required"] == ["nodeId"]
    assert heartbeat["additionalProperties"] is False
    assert heartbeat["properties"]["metrics"]["anyOf"][1] == {"type": "null"}
    assert schemas["Node"]["properties"]["status"]["enum"][0] == "NODE_STATUS_ACTIVE"
    assert schemas["Node"]["properties"]["registeredAt"]["anyOf"][0]["format"] == "date-time"

    def refs(value: object) -> list[str]:
        if isinstance(value, dict):
            found = [value["$ref"]] if "$ref" in value else []
            return found + [r for v in value.values() for r in refs(v)]
        if isinstance(value, list):
            return [r for v in value for r in refs(v)]
        return []

    for ref in refs(document):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


def test_the_clients_speak_every_method_of_the_table() -> None:
    """The typed client methods and their protocol agree with the one method table."""
    import typing

    from navarch.api.client import ControlPlaneClient, Methods

    for method in METHODS.values():
        for cls in (Methods, ControlPlaneClient):
            hints = typing.get_type_hints(getattr(cls, method.python_name))
            assert hints["request"] is method.request, (cls.__name__, method.name)
            assert hints["return"] is method.response, (cls.__name__, method.name)
    public = {n for n in vars(Methods) if not n.startswith("_")}
    assert public == {m.python_name for m in METHODS.values()}
