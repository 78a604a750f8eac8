"""Two real control planes on one PostgreSQL database and real daemons that know both: the leader
is killed, or cut off from the database, while commands flow; the other control plane leads within
15 s, the daemons carry on without a restart, and the database shows nothing lost and nothing done
twice."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import trio
from ha_cluster import Cluster, Database, PausableProxy, rpc, run_cli
from support.fleet import ADMIN_TOKEN

from navarch.api import wire as m
from navarch.api.client import HttpClient, Unreachable
from navarch.api.codec import ApiError

pytestmark = pytest.mark.slow

NODES = ("node-1", "node-2", "node-3")
TAKEOVER_WITHIN = 15.0
FINISHED = {"succeeded", "failed"}


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, postgres_url)
    try:
        yield cluster
    finally:
        cluster.stop()


class Traffic:
    """Issues diagnostics to the nodes through a client that knows both control planes, as an
    operator's tooling would, and keeps which calls were answered."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.accepted: list[str] = []
        self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: trio.run(self._run), daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    async def _run(self) -> None:
        async with HttpClient(self.urls, token=ADMIN_TOKEN, timeout=5) as client:
            i = 0
            while not self._stop.is_set():
                request = m.IssueCommandRequest(
                    node_id=NODES[i % len(NODES)],
                    type=m.CommandType.COMMAND_TYPE_RUN_DIAGNOSTIC,
                    reason="ha traffic",
                    parameters={"level": "1"},
                )
                i += 1
                try:
                    reply = await client.issue_command(request)
                except (ApiError, Unreachable):
                    self.refused += 1
                else:
                    self.accepted.append(reply.command.command_id)
                await trio.sleep(0.2)


def _start(cluster: Cluster, b_store: str | None = None, a_store: str | None = None) -> None:
    cluster.start_control_plane("a", a_store)
    cluster.wait_for("a to lead", lambda: cluster.leads("a"))
    cluster.start_control_plane("b", b_store)
    follower_of_a = f"follower of {cluster.urls['a']}"
    cluster.wait_for("b to follow a", lambda: cluster.role("b") == follower_of_a)
    for node_id in NODES:
        cluster.start_daemon(node_id)
    db = Database(cluster.database_url)
    cluster.wait_for("every node to register", lambda: db.node_ids() == set(NODES))


def _heartbeats_after(cluster: Cluster, url: str, moment: float) -> bool:
    """Whether every node's last heartbeat, as the control plane at `url` knows it, is later than
    `moment` (wall-clock seconds)."""
    from datetime import datetime

    reply = rpc(url, "ListNodes", {})
    if reply.status_code != 200:
        return False
    nodes = reply.json().get("nodes", [])
    seen = {
        n["nodeId"]: datetime.fromisoformat(n["lastHeartbeatAt"].replace("Z", "+00:00")).timestamp()
        for n in nodes
        if n.get("lastHeartbeatAt")
    }
    return set(seen) == set(NODES) and all(t > moment for t in seen.values())


def _check_database(cluster: Cluster, traffic: Traffic, events_before: set[str]) -> None:
    db = Database(cluster.database_url)
    accepted = set(traffic.accepted)
    assert len(accepted) == len(traffic.accepted)
    cluster.wait_for(
        "every command to be acknowledged",
        lambda: all(status in FINISHED for status in db.commands().values()),
        timeout=30,
    )
    commands = db.commands()
    # No node lost or registered twice: the daemons kept their node tokens.
    assert db.node_ids() == set(NODES)
    assert db.events_by("node.registered") == {node_id: 1 for node_id in NODES}
    # No event lost.
    assert events_before <= db.event_ids()
    # Every command a control plane accepted is stored once, issued once and acknowledged once.
    assert accepted <= set(commands)
    issued = db.events_by("command.issued", "commandId")
    acked = db.events_by("command.acked", "commandId")
    assert set(issued) == set(commands) and set(issued.values()) == {1}
    diagnostics = set(db.commands("run_diagnostic"))
    assert accepted <= diagnostics
    assert diagnostics <= set(acked) <= set(commands) and set(acked.values()) == {1}
    # No episode is open twice for one node.
    open_episodes = db.rows(
        "SELECT node_id, count(*) FROM remediations WHERE step NOT IN ('done', 'cancelled') "
        "GROUP BY node_id HAVING count(*) > 1"
    )
    assert open_episodes == []


def _hold_an_episode_open(cluster: Cluster, leader: str) -> str:
    """Opens a remediation episode for node-2 with remediation paused, so it stays open across a
    takeover; returns its id."""
    db = Database(cluster.database_url)
    assert rpc(leader, "PauseRemediation", {"reason": "ha test"}).status_code == 200
    xid = {
        "type": "HEALTH_EVENT_TYPE_XID",
        "time": datetime.now(UTC).isoformat(),
        "gpuIndex": 0,
        "xid": 79,
        "message": "GPU has fallen off the bus",
    }
    reply = rpc(leader, "ReportHealth", {"nodeId": "node-2", "events": [xid]})
    assert reply.status_code == 200, reply.text
    [(episode_id, _, is_open)] = cluster.wait_for(
        "an episode to open", lambda: db.episodes("node-2")
    )
    assert is_open == 1
    return episode_id


def _episode_goes_on_once(cluster: Cluster, leader: str, episode_id: str) -> None:
    """The open episode is the new leader's, once, and goes on once remediation resumes: with no
    pools to replace the node, it drains the node and holds it for an operator."""
    db = Database(cluster.database_url)
    assert [(e, is_open) for e, _, is_open in db.episodes("node-2")] == [(episode_id, 1)]
    assert rpc(leader, "ResumeRemediation", {}).status_code == 200
    cluster.wait_for("the episode to hold", lambda: db.episodes("node-2")[0][1] == "held")
    assert [e for e, _, _ in db.episodes("node-2")] == [episode_id]
    assert db.events_by("remediation.started")["node-2"] == 1
    assert db.events_by("remediation.held")["node-2"] == 1


def _no_daemon_restarted(cluster: Cluster, pids: dict[str, int]) -> None:
    for node_id, daemon in cluster.daemons.items():
        assert daemon.proc.poll() is None, daemon.output()
        assert daemon.proc.pid == pids[node_id]
        assert "registering again" not in daemon.output()


def test_the_follower_leads_within_seconds_when_the_leader_is_killed(cluster: Cluster) -> None:
    _start(cluster)
    db = Database(cluster.database_url)
    a, b = cluster.urls["a"], cluster.urls["b"]
    pids = {node_id: d.proc.pid for node_id, d in cluster.daemons.items()}

    # A follower answers reads from the database (a snapshot at most a second old), and refuses
    # writes naming the leader.
    def follower_lists_every_node() -> bool:
        reply = rpc(b, "ListNodes", {})
        assert reply.status_code == 200
        return {n["nodeId"] for n in reply.json().get("nodes", [])} == set(NODES)

    cluster.wait_for("b to list every node", follower_lists_every_node)
    # Only the leader shows the fleet's series: a follower's copy may be old.
    leader_metrics = httpx.get(f"{a}/metrics").text
    follower_metrics = httpx.get(f"{b}/metrics").text
    assert "navarch_leader 1.0" in leader_metrics and "navarch_nodes{" in leader_metrics
    assert "navarch_leader 0.0" in follower_metrics and "navarch_nodes{" not in follower_metrics
    refused = rpc(b, "IssueCommand", {"nodeId": "node-1", "type": "COMMAND_TYPE_CORDON"})
    assert refused.status_code == 503
    assert refused.json()["code"] == "unavailable"
    assert refused.headers["navarch-leader"] == a
    assert cluster.role("b") == f"follower of {a}" and not cluster.leads("b")
    # The CLI given both URLs, the follower first, lists from it and acts through the leader.
    listed = run_cli("list", "-o", "json", server=f"{b},{a}")
    assert listed.returncode == 0, listed.stderr
    cordoned = run_cli("cordon", "node-3", server=f"{b},{a}")
    assert cordoned.returncode == 0, cordoned.stderr
    episode_id = _hold_an_episode_open(cluster, a)

    with Traffic([a, b]) as traffic:
        cluster.wait_for("commands to flow", lambda: len(traffic.accepted) >= 5)
        events_before = db.event_ids()
        _, token_before = db.lease()
        cluster.processes["a"].signal(signal.SIGKILL)
        killed_at = time.monotonic()
        killed_wall = time.time()
        cluster.wait_for("b to lead", lambda: cluster.leads("b"), timeout=TAKEOVER_WITHIN)
        assert time.monotonic() - killed_at < TAKEOVER_WITHIN
        assert db.lease() == (b, token_before + 1)
        cluster.wait_for(
            "the daemons to heartbeat to b", lambda: _heartbeats_after(cluster, b, killed_wall)
        )
        accepted_at_takeover = len(traffic.accepted)
        cluster.wait_for(
            "commands to flow through b", lambda: len(traffic.accepted) >= accepted_at_takeover + 5
        )
        _episode_goes_on_once(cluster, b, episode_id)

    assert cluster.role("b") == "leader"
    _no_daemon_restarted(cluster, pids)
    _check_database(cluster, traffic, events_before)


def test_a_leader_cut_off_from_the_database_stops_leading_and_the_follower_takes_over(
    cluster: Cluster,
) -> None:
    host, _, port = cluster.database_url.split("@", 1)[1].split("/", 1)[0].partition(":")
    proxy = PausableProxy((host, int(port or 5432)))
    try:
        through_proxy = cluster.database_url.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}")
        _start(cluster, a_store=through_proxy)
        db = Database(cluster.database_url)
        a, b = cluster.urls["a"], cluster.urls["b"]
        pids = {node_id: d.proc.pid for node_id, d in cluster.daemons.items()}
        episode_id = _hold_an_episode_open(cluster, a)
        with Traffic([a, b]) as traffic:
            cluster.wait_for("commands to flow", lambda: len(traffic.accepted) >= 5)
            events_before = db.event_ids()
            _, token_before = db.lease()
            proxy.pause()
            cut_at = time.monotonic()
            cut_wall = time.time()
            cluster.wait_for("a to stop leading", lambda: not cluster.leads("a"))
            cluster.wait_for("b to lead", lambda: cluster.leads("b"), timeout=TAKEOVER_WITHIN)
            assert time.monotonic() - cut_at < TAKEOVER_WITHIN
            assert db.lease() == (b, token_before + 1)
            assert not cluster.leads("a")
            # a refuses writes now, with or without a leader to name.
            refused = rpc(a, "IssueCommand", {"nodeId": "node-1", "type": "COMMAND_TYPE_CORDON"})
            assert refused.status_code == 503, refused.text
            cluster.wait_for(
                "the daemons to heartbeat to b", lambda: _heartbeats_after(cluster, b, cut_wall)
            )
            accepted_at_takeover = len(traffic.accepted)
            cluster.wait_for(
                "commands to flow through b",
                lambda: len(traffic.accepted) >= accepted_at_takeover + 5,
            )
            _episode_goes_on_once(cluster, b, episode_id)
            # The partition heals: whatever a still had to write is refused by fencing, and a
            # follows b.
            proxy.resume()
            cluster.wait_for(
                "a to follow b", lambda: cluster.role("a") == f"follower of {b}", timeout=30
            )
        assert cluster.leads("b") and not cluster.leads("a")
        _no_daemon_restarted(cluster, pids)
        _check_database(cluster, traffic, events_before)
    finally:
        proxy.resume()  # a control plane still waiting on the database can stop
        cluster.stop()
        proxy.close()
