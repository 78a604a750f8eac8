"""Viewer tokens: they read through the API and the dashboard, and the API refuses them every
change, over a bearer token and over the session cookie alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from support.control_plane_process import REPO, control_plane_process
from support.serving import ADMIN_TOKEN, JOIN_TOKEN, post, serving
from support.store_snapshot import snapshot

from navarch.api.methods import METHODS

VIEWER_TOKEN = "viewer-" + "v" * 40
TOKENS = {"admin_token": ADMIN_TOKEN, "join_token": JOIN_TOKEN, "viewer_token": VIEWER_TOKEN}

READS: list[tuple[str, dict[str, object]]] = [
    ("ListNodes", {}),
    ("GetNode", {"nodeId": "n1"}),
    ("ListEvents", {"nodeId": "n1"}),
    ("ListRemediations", {}),
]
CHANGES: list[tuple[str, dict[str, object]]] = [
    ("IssueCommand", {"nodeId": "n1", "type": "COMMAND_TYPE_CORDON", "reason": "look"}),
    ("ScalePool", {"name": "training", "target": 3}),
    ("PauseRemediation", {"pool": "training"}),
    ("ResetBreaker", {"pool": "training"}),
    ("ReportQueueDepth", {"pool": "training", "depth": 4}),
    ("SendHeartbeat", {"nodeId": "n1"}),
    ("RegisterNode", {"nodeId": "n2"}),
]


def test_every_list_and_get_method_of_the_admin_reads_only() -> None:
    for method in METHODS.values():
        reads = method.access == "admin" and method.name.startswith(("List", "Get"))
        assert method.read_only == reads, method.name


async def viewer_session(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.post("/ui/signin", data={"token": VIEWER_TOKEN, "next": "/ui/"})
    client.cookies.clear()
    assert response.status_code == 303
    session_id = response.headers["set-cookie"].split(";")[0].partition("=")[2]
    jar = {"Cookie": f"navarch_session={session_id}"}
    about = await client.get("/ui/session", headers=jar)
    assert about.json()["role"] == "viewer"
    return {**jar, "X-Navarch-CSRF": about.json()["csrf"]}


async def test_a_viewer_reads_and_is_refused_every_change(tmp_path: Path) -> None:
    path = tmp_path / "navarch.db"
    async with serving(path, **TOKENS) as (client, service):
        registered = await post(client, "RegisterNode", {"nodeId": "n1"}, token=ADMIN_TOKEN)
        assert registered.status_code == 200
        cookie = await viewer_session(client)
        assert (await client.get("/ui/pools/training", headers=cookie)).status_code == 200
        before = snapshot(path), tuple(service.all_nodes())
        ways: list[tuple[dict[str, str], str]] = [(cookie, ""), ({}, VIEWER_TOKEN)]
        for name, body in READS:
            for headers, token in ways:
                response = await post(client, name, body, token=token, headers=headers)
                assert response.status_code == 200, (name, token, response.text)
        node = await post(client, "GetNode", {"nodeId": "n1"}, token=VIEWER_TOKEN)
        assert node.json()["node"]["nodeId"] == "n1"
        for name, body in CHANGES:
            for headers, token in ways:
                response = await post(client, name, body, token=token, headers=headers)
                assert response.status_code == 403, (name, token, response.text)
                assert response.json() == {
                    "code": "permission_denied",
                    "message": f"{name} needs an admin token; a viewer token only reads",
                }
        assert (snapshot(path), tuple(service.all_nodes())) == before


def test_the_control_plane_reads_the_viewer_token_from_its_variable(tmp_path: Path) -> None:
    env = {
        "NAVARCH_ADMIN_TOKEN": ADMIN_TOKEN,
        "NAVARCH_JOIN_TOKEN": JOIN_TOKEN,
        "NAVARCH_VIEWER_TOKEN": VIEWER_TOKEN,
    }
    args = ("--listen", "127.0.0.1:0", "--data-dir", str(tmp_path))
    with (
        control_plane_process(*args, env=env) as (_, url, _),
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        viewer = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
        listed = client.post("/navarch.v1.ControlPlaneService/ListNodes", json={}, headers=viewer)
        assert listed.status_code == 200
        refused = client.post(
            "/navarch.v1.ControlPlaneService/ScalePool",
            json={"name": "training", "target": 1},
            headers=viewer,
        )
        assert refused.status_code == 403
        signed_in = client.post("/ui/signin", data={"token": VIEWER_TOKEN})
        assert signed_in.status_code == 303
        assert signed_in.headers["set-cookie"].startswith("navarch_session=")


def test_a_viewer_token_alone_is_refused_with_one_line(tmp_path: Path) -> None:
    for env in (
        {"NAVARCH_VIEWER_TOKEN": VIEWER_TOKEN},
        {"NAVARCH_VIEWER_TOKEN": ADMIN_TOKEN, "NAVARCH_ADMIN_TOKEN": ADMIN_TOKEN},
    ):
        result = subprocess.run(
            [sys.executable, "-m", "navarch", "control-plane", "--data-dir", str(tmp_path)],
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode != 0
        assert result.stderr.strip().splitlines() == [
            "navarch: NAVARCH_VIEWER_TOKEN is set, so NAVARCH_ADMIN_TOKEN must be set too, and "
            "the viewer token must differ from the admin and join tokens"
        ], result.stderr
