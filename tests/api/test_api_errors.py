from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from support.serving import post, serving
from support.store_snapshot import snapshot

from navarch.api.wire import SERVICE_PATH
from navarch.controlplane import ControlPlane

CASES: list[tuple[str, Any, int, str, str]] = [
    (
        "SendHeartbeat",
        b'{"nodeId": ',
        400,
        "invalid_argument",
        "body: malformed JSON at line 1 column 12",
    ),
    ("SendHeartbeat", b"\xff\xfe", 400, "invalid_argument", "body: not valid UTF-8"),
    ("SendHeartbeat", [1, 2], 400, "invalid_argument", "body: expected a JSON object"),
    ("SendHeartbeat", {"nodeId": 5}, 400, "invalid_argument", "nodeId: expected a string, got 5"),
    (
        "SendHeartbeat",
        {"nodeid": "n1"},
        400,
        "invalid_argument",
        "unknown field 'nodeid' (did you mean 'nodeId'?)",
    ),
    ("SendHeartbeat", {"nodeId": ""}, 400, "invalid_argument", "nodeId: must not be empty"),
    ("SendHeartbeat", {"nodeId": "ghost"}, 404, "not_found", "node ghost is not registered"),
    ("RegisterNode", {}, 400, "invalid_argument", "nodeId: required field is missing"),
    (
        "RegisterNode",
        {"nodeId": "n2", "gpus": [{"index": "0", "uuid": "GPU-0"}]},
        400,
        "invalid_argument",
        'gpus[0].index: expected an integer, got "0"',
    ),
    (
        "RegisterNode",
        {"nodeId": "bad id with spaces"},
        400,
        "invalid_argument",
        "nodeId: expected at most 253 letters",
    ),
    (
        "SendHeartbeat",
        {"nodeId": "n1", "metrics": {"gpus": [{"index": 0, "temperatureC": "hot"}]}},
        400,
        "invalid_argument",
        'metrics.gpus[0].temperatureC: expected a number, got "hot"',
    ),
    (
        "IssueCommand",
        {"nodeId": "n1", "type": "COMMAND_TYPE_EXPLODE"},
        400,
        "invalid_argument",
        "type: expected one of COMMAND_TYPE_CORDON",
    ),
    (
        "IssueCommand",
        {"nodeId": "n1", "type": "COMMAND_TYPE_CORDON", "parameters": {"force": True}},
        400,
        "invalid_argument",
        "parameters['force']: expected a string, got true",
    ),
    (
        "ReportHealth",
        {"nodeId": "n1", "events": [{"type": "HEALTH_EVENT_TYPE_XID", "time": "yesterday"}]},
        400,
        "invalid_argument",
        "events[0].time: expected an RFC 3339 timestamp",
    ),
    (
        "AckCommand",
        {"nodeId": "n1", "commandId": "nope", "result": "COMMAND_RESULT_SUCCEEDED"},
        404,
        "not_found",
        "command nope not found for node n1",
    ),
    (
        "GetNodeCommands",
        {"nodeId": "n1", "wait": "forever"},
        400,
        "invalid_argument",
        "wait: expected a duration",
    ),
    ("ListEvents", {"limit": 0}, 400, "invalid_argument", "limit: expected 1 to 1000, got 0"),
    ("GetCommand", {"commandId": "missing"}, 404, "not_found", "command missing not found"),
]


async def _setup(client: httpx.AsyncClient) -> None:
    assert (await post(client, "RegisterNode", {"nodeId": "n1"})).status_code == 200
    cordon = {"nodeId": "n1", "type": "COMMAND_TYPE_DRAIN"}
    assert (await post(client, "IssueCommand", cordon)).status_code == 200


def _state(path: Path, service: ControlPlane) -> Any:
    return snapshot(path), tuple(service.all_nodes())


@pytest.mark.parametrize(("method", "body", "status", "code", "message"), CASES)
async def test_a_bad_call_gets_a_connect_error_naming_the_problem_and_changes_nothing(
    tmp_path: Path, method: str, body: Any, status: int, code: str, message: str
) -> None:
    path = tmp_path / "navarch.db"
    async with serving(path) as (client, service):
        await _setup(client)
        before = _state(path, service)
        response = await post(client, method, body)
        assert response.status_code == status
        assert response.headers["content-type"] == "application/json"
        error = response.json()
        assert error["code"] == code
        assert error["message"].startswith(message)
        assert _state(path, service) == before


async def test_transport_problems_get_the_connect_status_and_change_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "navarch.db"
    async with serving(path) as (client, service):
        await _setup(client)
        before = _state(path, service)
        valid = {"nodeId": "n1"}
        checks = [
            (await post(client, "SendHeartbeat", valid, content_type="text/plain"), 415),
            (await post(client, "SendHeartbeat", valid, content_type=None), 415),
            (await post(client, "SendHeartbeat", valid, content_type="application/proto"), 415),
            (await post(client, "Reboot", valid), 404),
            (await client.get(SERVICE_PATH + "SendHeartbeat"), 405),
            (await post(client, "SendHeartbeat", valid, headers={"Content-Encoding": "gzip"}), 501),
        ]
        for response, status in checks:
            assert response.status_code == status, response.text
            assert response.json()["code"] == "unimplemented"
        bad_headers = [
            {"Connect-Protocol-Version": "2"},
            {"Connect-Timeout-Ms": "soon"},
        ]
        for headers in bad_headers:
            response = await post(client, "SendHeartbeat", valid, headers=headers)
            assert response.status_code == 400
            assert response.json()["code"] == "invalid_argument"
            assert response.json()["message"].startswith(next(iter(headers)))
        assert (await client.get("/nowhere")).status_code == 404
        assert (await client.post("/healthz")).status_code == 405
        assert _state(path, service) == before


async def test_a_body_over_the_cap_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "navarch.db"
    async with serving(path) as (client, service):
        await _setup(client)
        before = _state(path, service)
        huge = b'{"nodeId": "n1", "labels": {"x": "' + b"y" * 200_000 + b'"}}'
        response = await post(client, "RegisterNode", huge)
        assert response.status_code == 429
        assert response.json() == {
            "code": "resource_exhausted",
            "message": "body: larger than the limit of 65536 bytes",
        }

        # Sent in chunks with no Content-Length: the server stops at the cap all the same.
        url = client.base_url
        stream = await trio.open_tcp_stream(url.host, url.port)
        async with stream:
            head = (
                f"POST {SERVICE_PATH}RegisterNode HTTP/1.1\r\nHost: {url.host}\r\n"
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b"2710\r\n" + b" " * 10_000 + b"\r\n"
            await stream.send_all(head.encode() + chunk * 7 + b"0\r\n\r\n")
            reply = b""
            while b"}" not in reply:
                reply += await stream.receive_some()
        status_line, _, rest = reply.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 429 "
        assert b'"code": "resource_exhausted"' in rest
        assert _state(path, service) == before


async def test_a_good_call_answers_in_lower_camel_case_json(tmp_path: Path) -> None:
    async with serving(tmp_path / "navarch.db") as (client, _):
        registered = await post(
            client,
            "RegisterNode",
            {"nodeId": "n1", "instanceType": "h100-8x", "gpus": [{"index": 0, "uuid": "G0"}]},
            headers={"Connect-Protocol-Version": "1", "Connect-Timeout-Ms": "5000"},
        )
        assert registered.status_code == 200
        body = registered.json()
        assert body["node"]["instanceType"] == "h100-8x"
        assert body["node"]["status"] == "NODE_STATUS_ACTIVE"
        assert body["node"]["registeredAt"].endswith("Z")
        # Fields that hold their default are left out, as proto3 JSON does.
        assert body["config"] == {"heartbeatInterval": "10s", "healthCheckInterval": "1m"}
        beat = await post(client, "SendHeartbeat", {"nodeId": "n1"})
        assert beat.json() == {"status": "NODE_STATUS_ACTIVE"}


async def test_readyz_says_whether_the_store_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from navarch.store import StoreError

    async with serving(tmp_path / "navarch.db") as (client, service):
        assert (await client.get("/healthz")).text == "ok\n"
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.text) == (200, "ready\n")

        async def broken() -> None:
            raise StoreError("navarch.db: disk I/O error")

        monkeypatch.setattr(service.store, "ping", broken)
        not_ready = await client.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.text == "store not reachable: navarch.db: disk I/O error\n"
        assert (await client.get("/healthz")).status_code == 200
