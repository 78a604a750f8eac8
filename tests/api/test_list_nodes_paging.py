"""ListNodes pages, sorts and searches on the server, over real HTTP on loopback."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.serving import post, serving
from support.store_snapshot import snapshot

# 24 nodes: three pools, hostnames that do not sort as the ids do, labels to search.
NODES = [
    {
        "nodeId": f"n{i:02d}",
        "hostname": f"Host-{(i * 7) % 24:02d}.example",
        "pool": ("train", "infer", "batch")[i % 3],
        "labels": {"rack": f"r{i % 4}", "team": "Vision" if i % 5 == 0 else "nlp"},
        "gpus": [{"index": g, "uuid": f"GPU-{i}-{g}"} for g in range(i % 3)],
    }
    for i in range(24)
]
CORDONED = {"n03", "n10", "n17"}


async def _fleet(client: httpx.AsyncClient) -> None:
    for body in NODES:
        assert (await post(client, "RegisterNode", body)).status_code == 200
    for node_id in sorted(CORDONED):
        answer = await post(
            client, "IssueCommand", {"nodeId": node_id, "type": "COMMAND_TYPE_CORDON"}
        )
        assert answer.status_code == 200


async def _list(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    answer = await post(client, "ListNodes", body)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _all_pages(client: httpx.AsyncClient, **body: Any) -> list[str]:
    """Every node id, page by page, checking each page's total and size."""
    ids: list[str] = []
    token = ""
    while True:
        page = await _list(client, **body, pageToken=token)
        ids += [n["nodeId"] for n in page["nodes"]]
        assert len(page["nodes"]) <= body["pageSize"]
        token = page.get("nextPageToken", "")
        if not token:
            assert len(ids) == page["total"]
            return ids
        assert len(page["nodes"]) == body["pageSize"]


async def test_pages_cover_every_node_once_in_order(tmp_path: Path) -> None:
    async with serving(tmp_path / "navarch.db") as (client, _):
        await _fleet(client)
        by_id = sorted(n["nodeId"] for n in NODES)
        assert await _all_pages(client, pageSize=5) == by_id
        assert await _all_pages(client, pageSize=5, orderBy="-id") == by_id[::-1]
        first = await _list(client, pageSize=5)
        assert first["total"] == 24
        assert [n["nodeId"] for n in first["nodes"]] == by_id[:5]
        # A page size of 0 is every node, as the CLI has always asked.
        everything = await _list(client)
        assert [n["nodeId"] for n in everything["nodes"]] == by_id
        assert everything["total"] == 24
        assert "nextPageToken" not in everything


async def test_each_order_sorts_by_its_value_with_ties_by_node_id(tmp_path: Path) -> None:
    async with serving(tmp_path / "navarch.db") as (client, _):
        await _fleet(client)
        hostnames = sorted(NODES, key=lambda n: n["hostname"])
        assert await _all_pages(client, pageSize=7, orderBy="hostname") == [
            n["nodeId"] for n in hostnames
        ]
        by_pool = sorted(NODES, key=lambda n: (n["pool"], n["nodeId"]))
        assert await _all_pages(client, pageSize=4, orderBy="pool") == [
            n["nodeId"] for n in by_pool
        ]
        by_gpus = sorted(NODES, key=lambda n: (len(n["gpus"]), n["nodeId"]), reverse=True)
        assert await _all_pages(client, pageSize=6, orderBy="-gpus") == [
            n["nodeId"] for n in by_gpus
        ]
        # ACTIVE sorts before CORDONED.
        active = sorted(n["nodeId"] for n in NODES if n["nodeId"] not in CORDONED)
        assert await _all_pages(client, pageSize=5, orderBy="status") == [
            *active,
            *sorted(CORDONED),
        ]


async def test_last_heartbeat_sorts_nodes_never_heard_from_first(tmp_path: Path) -> None:
    async with serving(tmp_path / "navarch.db") as (client, _):
        await _fleet(client)
        beaten = ["n20", "n05", "n11"]
        for node_id in beaten:
            assert (await post(client, "SendHeartbeat", {"nodeId": node_id})).status_code == 200
        silent = sorted(n["nodeId"] for n in NODES if n["nodeId"] not in beaten)
        assert await _all_pages(client, pageSize=5, orderBy="last_heartbeat") == silent + beaten
        newest = await _list(client, pageSize=2, orderBy="-last_heartbeat")
        assert [n["nodeId"] for n in newest["nodes"]] == ["n11", "n05"]
        assert newest["nodes"][0]["lastHeartbeatAt"] > newest["nodes"][1]["lastHeartbeatAt"]
        rest = await _list(
            client, pageSize=2, orderBy="-last_heartbeat", pageToken=newest["nextPageToken"]
        )
        assert [n["nodeId"] for n in rest["nodes"]] == ["n20", silent[-1]]


async def test_the_query_searches_ids_hostnames_and_labels_in_any_case(tmp_path: Path) -> None:
    async with serving(tmp_path / "navarch.db") as (client, _):
        await _fleet(client)
        vision = sorted(n["nodeId"] for n in NODES if n["labels"]["team"] == "Vision")
        found = await _list(client, query="VISION")
        assert [n["nodeId"] for n in found["nodes"]] == vision
        assert found["total"] == len(vision)
        # A label key matches every node that has it.
        assert (await _list(client, query="TeAm", pageSize=1))["total"] == 24
        assert [n["nodeId"] for n in (await _list(client, query="host-07.EX"))["nodes"]] == ["n01"]
        assert [n["nodeId"] for n in (await _list(client, query="n1"))["nodes"]] == [
            f"n1{i}" for i in range(10)
        ]
        # With filters, and across pages.
        infer_r1 = sorted(
            n["nodeId"] for n in NODES if n["pool"] == "infer" and n["labels"]["rack"] == "r1"
        )
        assert await _all_pages(client, pool="infer", query="r1", pageSize=1) == infer_r1
        nothing = await _list(client, query="no such node", pageSize=10)
        # Fields equal to their defaults (no nodes, a total of 0) are left out.
        assert nothing == {}


async def test_a_node_that_joins_between_pages_shifts_nothing(tmp_path: Path) -> None:
    async with serving(tmp_path / "navarch.db") as (client, _):
        await _fleet(client)
        first = await _list(client, pageSize=6)
        assert [n["nodeId"] for n in first["nodes"]][-1] == "n05"
        # Sorts before the cut: the next page neither repeats a node nor skips one.
        assert (await post(client, "RegisterNode", {"nodeId": "n000"})).status_code == 200
        second = await _list(client, pageSize=6, pageToken=first["nextPageToken"])
        assert [n["nodeId"] for n in second["nodes"]] == [f"n{i:02d}" for i in range(6, 12)]
        assert second["total"] == 25


BAD = [
    ({"orderBy": "speed"}, "orderBy: expected one of id, hostname, status, health, pool"),
    ({"orderBy": "--id"}, "orderBy: expected one of"),
    ({"pageSize": 1001}, "pageSize: expected an integer from 0 to 1000, got 1001"),
    ({"pageSize": -1}, "pageSize: expected an integer from 0 to 1000, got -1"),
    ({"pageToken": "not a token"}, "pageToken: not a token of this listing"),
    ({"pageToken": "WzFd"}, "pageToken: not a token of this listing"),  # [1]
    ({"pageToken": "WyJzcGVlZCIsIm4wMSJd"}, "pageToken: not a token of this listing"),
    # ["status","high","n01"]: a key of the wrong type.
    (
        {"orderBy": "status", "pageToken": "WyJzdGF0dXMiLCJoaWdoIiwibjAxIl0="},
        "pageToken: not a token of this listing",
    ),
    ({"pageToken": "x" * 2049}, "pageToken: expected at most 2048 characters"),
    # "[" 1500 times, deeper than the JSON parser goes.
    ({"pageToken": base64.b64encode(b"[" * 1500).decode()}, "pageToken: not a token"),
    ({"query": "q" * 257}, "query: expected at most 256 characters"),
    ({"query": "a\u0000b"}, "query: holds a control character (U+0000)"),
]


@pytest.mark.parametrize(("body", "message"), BAD)
async def test_a_bad_listing_names_its_field_and_changes_nothing(
    tmp_path: Path, body: dict[str, Any], message: str
) -> None:
    async with serving(tmp_path / "navarch.db") as (client, _):
        await _fleet(client)
        before = snapshot(tmp_path / "navarch.db")
        answer = await post(client, "ListNodes", body)
        assert answer.status_code == 400
        assert answer.json()["code"] == "invalid_argument"
        assert message in answer.json()["message"]
        assert snapshot(tmp_path / "navarch.db") == before


async def test_a_token_of_another_order_is_refused(tmp_path: Path) -> None:
    async with serving(tmp_path / "navarch.db") as (client, _):
        await _fleet(client)
        token = (await _list(client, pageSize=5, orderBy="hostname"))["nextPageToken"]
        answer = await post(
            client, "ListNodes", {"pageSize": 5, "orderBy": "-hostname", "pageToken": token}
        )
        assert answer.status_code == 400
        assert answer.json()["message"] == (
            "pageToken: the token is for orderBy 'hostname', not '-hostname'; ask for the first "
            "page again"
        )
        # The same token with its own order goes on.
        again = await _list(client, pageSize=5, orderBy="hostname", pageToken=token)
        assert len(again["nodes"]) == 5
