"""Values an attacker with a token sends, over real HTTP: each is refused, naming its field,
changes nothing, and leaves every node readable, in this process and after a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.serving import ADMIN_TOKEN, JOIN_TOKEN, post, serving
from support.store_snapshot import snapshot

from navarch.api import limits
from navarch.api.methods import METHODS

TOKENS = {"admin_token": ADMIN_TOKEN, "join_token": JOIN_TOKEN}
NODE = "node"  # stands for n1's own token, issued when the test registers it
EVENT = {"type": "HEALTH_EVENT_TYPE_XID", "time": "2026-01-01T00:00:00Z", "xid": 79}

# (method, token, body as JSON text, the start of the message). Text, because `1e400` and a lone
# surrogate are valid JSON that Python's json.dumps will not write.
REFUSED: list[tuple[str, str, str, str]] = [
    (
        "AckCommand",
        NODE,
        '{"nodeId": "n1", "commandId": "c1", "result": "COMMAND_RESULT_FAILED",'
        ' "message": "\\ud800"}',
        "message: holds a lone surrogate (U+D800)",
    ),
    ("RegisterNode", JOIN_TOKEN, '{"nodeId": "n2", "hostname": "\\udfff"}', "hostname: holds"),
    ("RegisterNode", JOIN_TOKEN, '{"nodeId": "n1", "labels": {"a": "\\ud800"}}', "labels['a']"),
    ("RegisterNode", JOIN_TOKEN, '{"nodeId": "n1", "labels": {"\\ud800": "b"}}', "labels["),
    (
        "IssueCommand",
        ADMIN_TOKEN,
        '{"nodeId": "n1", "type": "COMMAND_TYPE_CORDON", "reason": "\\ud800"}',
        "reason: holds a lone surrogate",
    ),
    (
        "ReportHealth",
        NODE,
        json.dumps({"nodeId": "n1", "events": [EVENT, {**EVENT, "message": "@"}]}).replace(
            "@", "\\ud800"
        ),
        "events[1].message: holds a lone surrogate",
    ),
    (
        "ReportHealth",
        NODE,
        json.dumps({"nodeId": "n1", "events": [{**EVENT, "time": "0999-01-01T00:00:00Z"}]}),
        "events[0].time: expected a time from 1970 to 9999",
    ),
    (
        "SendHeartbeat",
        NODE,
        '{"nodeId": "n1", "metrics": {"cpuPercent": 1e400}}',
        "metrics.cpuPercent: expected a number from 0 to 100, got inf",
    ),
    (
        "SendHeartbeat",
        NODE,
        '{"nodeId": "n1", "metrics": {"gpus": [{"index": 0, "powerWatts": -1e400}]}}',
        "metrics.gpus[0].powerWatts: expected a number from 0 to 100000",
    ),
    (
        "ReportHealth",
        NODE,
        '{"nodeId": "n1", "events": [{"type": "HEALTH_EVENT_TYPE_XID",'
        ' "time": "2026-01-01T00:00:00Z", "metrics": {"t": 1e400}}]}',
        "events[0].metrics['t']: expected a finite number, got inf",
    ),
    (
        "GetNodeCommands",
        NODE,
        '{"nodeId": "n1", "wait": "99999999999d"}',
        "wait: expected at most 1d",
    ),
    ("GetNodeCommands", NODE, '{"nodeId": "n1", "wait": "25h"}', "wait: expected at most 1d"),
    (
        "RegisterNode",
        JOIN_TOKEN,
        json.dumps({"nodeId": "n1", "labels": {f"k{i}": "v" for i in range(65)}}),
        "labels: expected at most 64 entries, got 65",
    ),
    (
        "ReportHealth",
        NODE,
        json.dumps({"nodeId": "n1", "events": [EVENT] * 257}),
        "events: expected at most 256 items, got 257",
    ),
    (
        "ReportHealth",
        NODE,
        json.dumps({"nodeId": "n1", "events": [{**EVENT, "details": {"a\nb": "c"}}]}),
        "events[0].details['a\\nb']: key holds a control character (U+000A)",
    ),
    (
        "ReportPreemption",
        NODE,
        json.dumps({"nodeId": "n1", "kind": "spot", "detail": "x" * 1001}),
        "detail: expected at most 1000 characters",
    ),
    (
        "RegisterNode",
        JOIN_TOKEN,
        json.dumps({"nodeId": "n1", "hostname": "h" * 254}),
        "hostname: expected at most 253 characters",
    ),
]


async def test_hostile_values_are_refused_by_field_and_change_nothing(tmp_path: Path) -> None:
    path = tmp_path / "navarch.db"
    async with serving(path, **TOKENS) as (client, service):
        joined = await post(client, "RegisterNode", {"nodeId": "n1"}, token=JOIN_TOKEN)
        node_token = joined.json()["nodeToken"]
        before = snapshot(path, ignore=("last_heartbeat_at", "metrics")), list(service.all_nodes())
        for method, token, body, message in REFUSED:
            sent = node_token if token == NODE else token
            response = await post(client, method, body.encode(), token=sent)
            assert response.status_code == 400, (method, body[:80], response.text)
            assert response.json()["code"] == "invalid_argument"
            assert response.json()["message"].startswith(message), (method, response.text)
        assert (
            snapshot(path, ignore=("last_heartbeat_at", "metrics")),
            list(service.all_nodes()),
        ) == before
        listed = await post(client, "ListNodes", {}, token=ADMIN_TOKEN)
        assert listed.status_code == 200
        assert [n["nodeId"] for n in json.loads(listed.content)["nodes"]] == ["n1"]
    async with serving(path, **TOKENS) as (client, _):
        assert (await post(client, "GetNode", {"nodeId": "n1"}, token=ADMIN_TOKEN)).is_success


async def test_every_text_a_node_may_send_reads_back_as_sent(tmp_path: Path) -> None:
    # Text at its limit, with tabs, new lines and characters outside the BMP, is kept as sent.
    message = ("é\t😀\n" * 1024)[: limits.LIMITS["message"].max_length]  # type: ignore[union-attr]
    event = {**EVENT, "time": "1970-01-01T00:00:00Z", "message": message, "details": {"ü": "😀"}}
    async with serving(tmp_path / "navarch.db") as (client, _):
        labels = {"zone": "eu-😀", "k" * 253: "v" * 253}
        assert (await post(client, "RegisterNode", {"nodeId": "n1", "labels": labels})).is_success
        assert (await post(client, "ReportHealth", {"nodeId": "n1", "events": [event]})).is_success
    async with serving(tmp_path / "navarch.db") as (client, _):
        got = (await post(client, "GetNode", {"nodeId": "n1"})).json()["node"]
    assert got["labels"] == labels
    assert got["lastHealthEvents"][0]["message"] == message
    assert got["lastHealthEvents"][0]["details"] == {"ü": "😀"}
    assert got["lastHealthEvents"][0]["time"] == "1970-01-01T00:00:00Z"


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_field_of_every_request_has_a_limit(method: str) -> None:
    # Building the checker fails for a text, number, list or map field that LIMITS does not name.
    limits.checker(METHODS[method].request)


def test_a_field_without_a_limit_is_an_error_when_its_checker_is_built() -> None:
    from attrs import frozen

    @frozen
    class Unlimited:
        comment: str

    with pytest.raises(LookupError, match=r"Unlimited\.comment: no length limit"):
        limits.checker(Unlimited)
