"""ListCommands: a node's command history, newest first, page by page, over real HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from support.serving import post, serving
from support.store_snapshot import snapshot


async def _issue(client: httpx.AsyncClient, node_id: str, kind: str, **body: Any) -> str:
    answer = await post(client, "IssueCommand", {"nodeId": node_id, "type": kind, **body})
    assert answer.status_code == 200, answer.text
    command_id: str = answer.json()["command"]["commandId"]
    return command_id


async def _commands(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    answer = await post(client, "ListCommands", body)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _node_with_history(client: httpx.AsyncClient) -> list[str]:
    """Registers n1 and n2 and gives n1 seven commands; returns n1's command ids, oldest first."""
    for node_id in ("n1", "n2"):
        assert (await post(client, "RegisterNode", {"nodeId": node_id})).status_code == 200
    await _issue(client, "n2", "COMMAND_TYPE_CORDON")
    issued = []
    for i in range(3):
        issued.append(await _issue(client, "n1", "COMMAND_TYPE_CORDON", reason=f"look {i}"))
        issued.append(await _issue(client, "n1", "COMMAND_TYPE_UNCORDON", reason=f"done {i}"))
    issued.append(
        await _issue(client, "n1", "COMMAND_TYPE_RUN_DIAGNOSTIC", parameters={"level": "1"})
    )
    return issued


async def test_a_nodes_commands_come_newest_first_page_by_page(tmp_path: Path) -> None:
    async with serving(tmp_path / "navarch.db") as (client, _):
        issued = await _node_with_history(client)
        seen: list[str] = []
        before = ""
        pages = 0
        while True:
            page = await _commands(client, nodeId="n1", limit=3, before=before)
            assert all(c["nodeId"] == "n1" for c in page["commands"])
            seen += [c["commandId"] for c in page["commands"]]
            pages += 1
            before = page.get("nextBefore", "")
            if not before:
                break
            assert before == seen[-1]
        assert seen == issued[::-1]
        assert pages == 3
        newest = (await _commands(client, nodeId="n1"))["commands"]
        assert [c["type"] for c in newest[:3]] == [
            "COMMAND_TYPE_RUN_DIAGNOSTIC",
            "COMMAND_TYPE_UNCORDON",
            "COMMAND_TYPE_CORDON",
        ]
        assert newest[1]["status"] == "COMMAND_STATUS_SUCCEEDED"
        assert newest[1]["reason"] == "done 2"
        assert newest[0]["status"] == "COMMAND_STATUS_PENDING"


async def test_an_open_command_shows_its_delivery_at_once(tmp_path: Path) -> None:
    async with serving(tmp_path / "navarch.db") as (client, _):
        issued = await _node_with_history(client)
        beat = await post(client, "SendHeartbeat", {"nodeId": "n1"})
        assert [c["commandId"] for c in beat.json()["commands"]] == [issued[-1]]
        # The delivery reaches the store about a second later; the listing shows it now.
        newest = (await _commands(client, nodeId="n1", limit=1))["commands"][0]
        assert newest["status"] == "COMMAND_STATUS_DELIVERED"
        ack = {
            "nodeId": "n1",
            "commandId": issued[-1],
            "result": "COMMAND_RESULT_FAILED",
            "message": "dcgm: 2 errors",
        }
        assert (await post(client, "AckCommand", ack)).status_code == 200
        newest = (await _commands(client, nodeId="n1", limit=1))["commands"][0]
        assert newest["status"] == "COMMAND_STATUS_FAILED"
        assert newest["resultMessage"] == "dcgm: 2 errors"


BAD = [
    ({"nodeId": "n1", "limit": 0}, 400, "invalid_argument", "limit: expected 1 to 500, got 0"),
    ({"nodeId": "n1", "limit": 501}, 400, "invalid_argument", "limit: expected 1 to 500, got 501"),
    ({"nodeId": ""}, 400, "invalid_argument", "nodeId: must not be empty"),
    ({}, 400, "invalid_argument", "nodeId: required field is missing"),
    ({"nodeId": "n1", "before": "not an id"}, 400, "invalid_argument", "before: expected at most"),
    ({"nodeId": "ghost"}, 404, "not_found", "node ghost is not registered"),
]


@pytest.mark.parametrize(("body", "status", "code", "message"), BAD)
async def test_a_bad_listing_names_its_field_and_changes_nothing(
    tmp_path: Path, body: dict[str, Any], status: int, code: str, message: str
) -> None:
    async with serving(tmp_path / "navarch.db") as (client, _):
        await _node_with_history(client)
        kept = snapshot(tmp_path / "navarch.db")
        answer = await post(client, "ListCommands", body)
        assert answer.status_code == status
        assert answer.json()["code"] == code
        assert message in answer.json()["message"]
        assert snapshot(tmp_path / "navarch.db") == kept
