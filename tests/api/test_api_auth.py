from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
from support.serving import ADMIN_TOKEN, JOIN_TOKEN, post, serving
from support.store_snapshot import snapshot

TOKENS = {"admin_token": ADMIN_TOKEN, "join_token": JOIN_TOKEN}
ISSUE = {"nodeId": "n1", "type": "COMMAND_TYPE_CORDON"}


async def test_the_auth_matrix(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "navarch.db"
    async with serving(path, **TOKENS) as (client, service):
        joined = await post(client, "RegisterNode", {"nodeId": "n1"}, token=JOIN_TOKEN)
        assert joined.status_code == 200
        n1_token = joined.json()["nodeToken"]
        n2 = await post(client, "RegisterNode", {"nodeId": "n2"}, token=JOIN_TOKEN)
        n2_token = n2.json()["nodeToken"]
        assert n1_token.startswith("nvn_")
        assert n1_token != n2_token
        before = snapshot(path), tuple(service.all_nodes())

        refused = [
            # (method, body, token, HTTP status, code, message start)
            ("ListNodes", {}, "", 401, "unauthenticated", "missing Authorization header"),
            ("SendHeartbeat", {"nodeId": "n1"}, "", 401, "unauthenticated", "missing"),
            ("RegisterNode", {"nodeId": "n3"}, "", 401, "unauthenticated", "missing"),
            ("ListNodes", {}, "wrong", 401, "unauthenticated", "invalid token"),
            ("IssueCommand", ISSUE, "wrong", 401, "unauthenticated", "invalid token"),
            ("RegisterNode", {"nodeId": "n3"}, "nvn_forged", 401, "unauthenticated", "invalid"),
            (
                "SendHeartbeat",
                {"nodeId": "n2"},
                n1_token,
                403,
                "permission_denied",
                "the token of node n1 cannot act for node n2",
            ),
            ("RegisterNode", {"nodeId": "n2"}, n1_token, 403, "permission_denied", "the token"),
            ("ListNodes", {}, n1_token, 403, "permission_denied", "ListNodes needs an admin"),
            ("IssueCommand", ISSUE, n1_token, 403, "permission_denied", "IssueCommand needs"),
            ("GetNode", {"nodeId": "n1"}, n1_token, 403, "permission_denied", "GetNode needs"),
            ("SendHeartbeat", {"nodeId": "n1"}, JOIN_TOKEN, 403, "permission_denied", "Send"),
            ("ListEvents", {}, JOIN_TOKEN, 403, "permission_denied", "ListEvents needs"),
            (
                "ReportPreemption",
                {"nodeId": "n2", "kind": "spot"},
                n1_token,
                403,
                "permission_denied",
                "the token of node n1 cannot act for node n2",
            ),
            (
                "ReportPreemption",
                {"nodeId": "n1", "kind": "spot"},
                JOIN_TOKEN,
                403,
                "permission_denied",
                "Report",
            ),
        ]
        for method, body, token, status, code, message in refused:
            response = await post(client, method, body, token=token)
            assert response.status_code == status, (method, token, response.text)
            assert response.json()["code"] == code
            assert response.json()["message"].startswith(message), response.text
        malformed = await client.post(
            "/navarch.v1.ControlPlaneService/ListNodes",
            content=b"{}",
            headers={"Content-Type": "application/json", "Authorization": "Basic abc"},
        )
        assert malformed.status_code == 401
        assert malformed.json()["message"].startswith("malformed Authorization header")
        assert (snapshot(path), tuple(service.all_nodes())) == before

        allowed = [
            ("SendHeartbeat", {"nodeId": "n1"}, n1_token),
            ("GetNodeCommands", {"nodeId": "n1"}, n1_token),
            ("ReportHealth", {"nodeId": "n1"}, n1_token),
            ("ReportPreemption", {"nodeId": "n1", "kind": "spot"}, n1_token),
            ("SendHeartbeat", {"nodeId": "n2"}, ADMIN_TOKEN),
            ("ListNodes", {}, ADMIN_TOKEN),
            ("IssueCommand", ISSUE, ADMIN_TOKEN),
            ("ListEvents", {}, ADMIN_TOKEN),
        ]
        for method, body, token in allowed:
            response = await post(client, method, body, token=token)
            assert response.status_code == 200, (method, response.text)
        # A node with its own token may register again, and gets no new token for it.
        again = await post(client, "RegisterNode", {"nodeId": "n1"}, token=n1_token)
        assert again.status_code == 200
        assert "nodeToken" not in again.json()

        for page in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            assert (await client.get(page)).status_code == 200
    logged = caplog.text
    for secret in (ADMIN_TOKEN, JOIN_TOKEN, n1_token, n2_token):
        assert secret not in logged
    # The store keeps hashes only.
    stored = {row[0] for row in snapshot(path)["node_tokens"]} | {
        row[1] for row in snapshot(path)["node_tokens"]
    }
    assert stored.isdisjoint({n1_token, n2_token})
    assert hashlib.sha256(n1_token.encode()).hexdigest() in stored


async def test_without_tokens_every_call_is_allowed(tmp_path: Path) -> None:
    async with serving(tmp_path / "navarch.db") as (client, _):
        registered = await post(client, "RegisterNode", {"nodeId": "n1"})
        assert registered.status_code == 200
        assert "nodeToken" not in registered.json()
        assert (await post(client, "ListNodes", {})).status_code == 200
