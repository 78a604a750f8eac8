"""The operator commands against a real control plane on loopback HTTP."""

from __future__ import annotations

import json
import re
import socket
from datetime import UTC, datetime, timedelta

import pytest
import trio
from support.live_control_plane import LiveControlPlane
from support.waiting import wait_for

from navarch.api import wire as m
from navarch.cli.nodes import age
from navarch.daemon.drain import DrainOutcome


class Drain:
    def __init__(self, ok: bool, message: str) -> None:
        self.outcome = DrainOutcome(ok, message)

    async def __call__(self, timeout, env):
        await trio.sleep(0.2)
        return self.outcome


def cells(line: str) -> list[str]:
    """The cells of one line of a table as the terminal shows it."""
    return [cell.strip() for cell in re.split("[│┃]", line)]


@pytest.fixture
def fleet(tmp_path, monkeypatch):
    with LiveControlPlane(tmp_path / "navarch.db") as live:
        monkeypatch.setenv("NAVARCH_SERVER", live.url)
        live.start_daemon("gpu-1")
        live.start_daemon("gpu-2", drain=Drain(False, "drain command exited with status 3: x"))
        live.start_daemon("gpu-3", pool="infer")
        yield live


def test_list_shows_every_node_with_filters_and_json(fleet, run):
    code, out, _ = run("list")
    assert code == 0
    header, _, *rows = [cells(line) for line in out.splitlines()]
    assert header == [
        "NODE", "STATUS", "HEALTH", "POOL", "PROVIDER", "REGION", "INSTANCE TYPE", "GPUS",
        "HEARTBEAT",
    ]  # fmt: skip
    assert [row[:8] for row in rows] == [
        ["gpu-1", "active", "unknown", "train", "fake", "-", "-", "8"],
        ["gpu-2", "active", "unknown", "train", "fake", "-", "-", "8"],
        ["gpu-3", "active", "unknown", "infer", "fake", "-", "-", "8"],
    ]
    assert all(row[8].endswith("s ago") for row in rows)

    code, out, _ = run("list", "--pool", "infer", "-o", "json")
    nodes = json.loads(out)
    assert [n["nodeId"] for n in nodes] == ["gpu-3"]
    assert nodes[0]["status"] == "NODE_STATUS_ACTIVE" and len(nodes[0]["gpus"]) == 8

    assert run("list", "--status", "CORDONED")[1].strip() == "no nodes"
    code, out, _ = run("list", "--json", "--status", "active", "--provider", "fake")
    assert len(json.loads(out)) == 3


def test_get_shows_the_machine_and_its_gpus(fleet, run):
    code, out, _ = run("get", "gpu-1")
    assert code == 0
    assert "Node:           gpu-1" in out
    assert "Status:         active" in out
    assert "ago" in out.split("Last heartbeat:")[1].splitlines()[0]
    assert out.count("NVIDIA H100 80GB HBM3") == 8
    code, out, _ = run("get", "gpu-1", "-o", "json")
    assert json.loads(out)["node"]["nodeId"] == "gpu-1"


def test_cordon_and_uncordon(fleet, run):
    code, out, _ = run("cordon", "gpu-1", "--reason", "fan noise")
    assert code == 0
    assert out.startswith("node gpu-1 cordoned (command ")
    node = json.loads(run("get", "gpu-1", "--json")[1])["node"]
    assert (node["status"], node["statusReason"]) == ("NODE_STATUS_CORDONED", "fan noise")
    code, out, _ = run("uncordon", "gpu-1")
    assert code == 0 and out.startswith("node gpu-1 uncordoned")
    assert run("list", "--status", "cordoned")[1].strip() == "no nodes"


def test_drain_wait_follows_the_node_to_drained(fleet, run):
    code, out, err = run("drain", "gpu-1", "--wait", "--reason", "kernel update")
    assert code == 0, err
    assert out.splitlines()[-1] == (
        "node gpu-1 drained: no drain command is configured; nothing to drain"
    )
    drained = json.loads(run("list", "--status", "drained", "-o", "json")[1])
    assert [n["nodeId"] for n in drained] == ["gpu-1"]


def test_drain_wait_fails_with_the_nodes_message(fleet, run):
    code, out, err = run("drain", "gpu-2", "--wait")
    assert code == 1
    assert out.startswith("node gpu-2 draining (command ")
    assert err == "navarch: drain of node gpu-2 failed: drain command exited with status 3: x\n"


def test_terminate_stops_the_daemon(fleet, run):
    code, out, _ = run("terminate", "gpu-3", "--reason", "scale down")
    assert code == 0 and out.startswith("node gpu-3 terminating")
    wait_for("the daemon to stop", lambda: fleet.daemons["gpu-3"].terminated, timeout=10)
    node = json.loads(run("get", "gpu-3", "-o", "json")[1])["node"]
    assert node["status"] == "NODE_STATUS_TERMINATED"


def test_events_lists_what_happened(fleet, run):
    run("cordon", "gpu-1", "--reason", "fan noise")
    code, out, _ = run("events", "--node", "gpu-1")
    assert code == 0
    assert "node.status_changed" in out and "active -> cordoned" in out and "fan noise" in out
    code, out, _ = run("events", "--kind", "node.registered", "--limit", "2", "-o", "json")
    events = json.loads(out)
    assert len(events) == 2 and {e["kind"] for e in events} == {"node.registered"}


def test_an_unknown_node_is_named(fleet, run):
    for args in (["get", "gpu-7"], ["cordon", "gpu-7"], ["drain", "gpu-7", "--wait"]):
        assert run(*args) == (1, "", "navarch: node gpu-7 not found\n")


def test_an_unreachable_server_is_one_line(run):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, err = run("list", "--server", f"http://127.0.0.1:{port}")
    assert (code, out) == (1, "")
    assert err == (
        f"navarch: cannot reach the control plane at http://127.0.0.1:{port}: connection refused\n"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["list", "--watch", "-o", "json"],
        ["drain", "gpu-1", "--timeout", "soon"],
        ["list", "--server", "127.0.0.1:50051"],
        ["list", "--label", "rack"],
        ["list", "--status", "resting"],
    ],
)
def test_usage_errors_exit_2(run, args):
    code, _, err = run(*args)
    assert code == 2
    assert err.splitlines()[-1].startswith("navarch: ")


def test_tokens(tmp_path, run, monkeypatch):
    with LiveControlPlane(
        tmp_path / "auth.db", admin_token="admin-secret", join_token="join-secret"
    ) as live:
        monkeypatch.setenv("NAVARCH_SERVER", live.url)
        code, _, err = run("list")
        assert code == 1
        assert err == (
            f"navarch: the control plane at {live.url} requires a token; pass --token or set "
            "NAVARCH_ADMIN_TOKEN\n"
        )
        code, _, err = run("list", "--token", "join-secret")
        assert code == 1
        assert err == (
            "navarch: the token is not allowed to do this: ListNodes needs an admin token\n"
        )
        code, _, err = run("list", "--token", "nope")
        assert code == 1 and "did not accept the token (invalid token)" in err
        assert "nope" not in err
        monkeypatch.setenv("NAVARCH_ADMIN_TOKEN", "admin-secret")
        assert run("list") == (0, "no nodes\n", "")


def test_heartbeat_ages_read_like_people_say_them():
    now = datetime(2026, 1, 2, 12, 0, 0, tzinfo=UTC)
    assert age(None, now) == "never"
    assert age(now - timedelta(seconds=12), now) == "12s ago"
    assert age(now - timedelta(minutes=5, seconds=59), now) == "5m ago"
    assert age(now - timedelta(hours=3), now) == "3h ago"
    assert age(now - timedelta(days=2, hours=5), now) == "2d ago"
    assert age(now + timedelta(seconds=3), now) == "0s ago"  # a clock a little ahead


def test_list_shows_nodes_registered_but_never_heard_from(fleet, run):
    fleet.admin("RegisterNode", m.RegisterNodeRequest(node_id="gpu-9"))
    rows = [cells(line) for line in run("list")[1].splitlines()]
    assert next(row for row in rows if row[0] == "gpu-9")[-1] == "never"
