"""A control plane, daemons and the CLI as real processes on loopback, as an operator runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from support.fleet import JOIN_TOKEN, Fleet

pytestmark = pytest.mark.slow

FAILING_DRAIN = "echo started; echo 'jobs still running' >&2; exit 3"


def _age(stamp: str) -> float:
    from datetime import UTC, datetime

    return (datetime.now(UTC) - datetime.fromisoformat(stamp)).total_seconds()


def test_cordon_drain_uncordon_terminate(fleet, build_fake_nvml):
    fleet.start_control_plane()
    good = fleet.start_daemon("gpu-a", drain_command='echo "moved jobs off $NAVARCH_NODE_ID"')
    bad = fleet.start_daemon("gpu-b", drain_command=FAILING_DRAIN)
    # A third machine reads its GPUs through NVML: the fake libnvidia-ml, loaded by dlopen.
    library = build_fake_nvml()
    fleet.start_daemon("gpu-n", gpus=None, NAVARCH_NVML_LIBRARY=str(library), FAKE_NVML_DEVICES="4")
    fleet.wait_for("three registered nodes", lambda: len(fleet.nodes()) == 3)
    assert [g["uuid"][:4] for g in fleet.node("gpu-n")["gpus"]] == ["GPU-"] * 4

    listed = fleet.cli("list")
    assert listed.returncode == 0
    assert "gpu-a" in listed.stdout and "gpu-b" in listed.stdout and "active" in listed.stdout
    node = fleet.node("gpu-a")
    assert (node["pool"], node["provider"], node["labels"]) == ("e2e", "fake", {"rack": "r1"})
    assert len(node["gpus"]) == 8 and node["metrics"]["gpus"]

    result = fleet.cli("cordon", "gpu-a", "--reason", "maintenance")
    assert result.returncode == 0, result.stderr
    assert fleet.node("gpu-a")["status"] == "NODE_STATUS_CORDONED"

    result = fleet.cli("drain", "gpu-a", "--wait", "--timeout", "30s")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "node gpu-a drained: moved jobs off gpu-a"
    assert fleet.node("gpu-a")["status"] == "NODE_STATUS_DRAINED"

    result = fleet.cli("drain", "gpu-b", "--wait", "--timeout", "30s")
    assert result.returncode == 1
    assert result.stderr == (
        "navarch: drain of node gpu-b failed: drain command exited with status 3: "
        "jobs still running\n"
    )
    assert fleet.node("gpu-b")["status"] == "NODE_STATUS_DRAINING"

    result = fleet.cli("uncordon", "gpu-b")
    assert result.returncode == 0, result.stderr
    assert fleet.node("gpu-b")["status"] == "NODE_STATUS_ACTIVE"

    result = fleet.cli("terminate", "gpu-a", "--reason", "retired")
    assert result.returncode == 0, result.stderr
    assert good.wait(timeout=15) == 0
    assert fleet.node("gpu-a")["status"] == "NODE_STATUS_TERMINATED"
    assert "stopped: the node was terminated" in good.output()

    events = json.loads(fleet.cli("events", "--node", "gpu-a", "-o", "json").stdout)
    kinds = [e["kind"] for e in events]
    assert kinds.count("command.acked") == 2 and "node.registered" in kinds
    changes = [
        (e.get("fromStatus"), e.get("toStatus")) for e in reversed(events) if "toStatus" in e
    ]
    assert changes[-1] == ("NODE_STATUS_DRAINED", "NODE_STATUS_TERMINATED")

    bad.signal(signal.SIGTERM)
    assert bad.wait(timeout=10) == 0
    assert "stopping on SIGTERM" in bad.output()


def test_heartbeat_loss_marks_a_node_unhealthy(fleet):
    fleet.start_control_plane()
    daemon = fleet.start_daemon("gpu-c")
    fleet.wait_status("gpu-c", "ACTIVE")
    fleet.wait_for("a first heartbeat", lambda: fleet.node("gpu-c").get("lastHeartbeatAt"))

    watch = subprocess.Popen(
        [sys.executable, "-m", "navarch", "list", "--watch", "--interval", "300ms"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **fleet.env(NAVARCH_SERVER=fleet.server)},
        text=True,
    )
    daemon.signal(signal.SIGSTOP)
    node = fleet.wait_status("gpu-c", "UNHEALTHY", timeout=10)
    assert node["statusReason"] == "heartbeat lost"
    # The watch draws its table when it stops (its output is no terminal). Of the lists answered
    # from now on, the second was asked after the node became unhealthy.
    lists = fleet.answered()["ListNodes"]
    fleet.wait_for(
        "the watch to list the unhealthy node", lambda: fleet.answered()["ListNodes"] >= lists + 2
    )
    watch.send_signal(signal.SIGINT)
    out, err = watch.communicate(timeout=10)
    assert watch.returncode == 0, err
    assert "unhealthy" in out and "gpu-c" in out
    result = fleet.cli("uncordon", "gpu-c")
    assert result.returncode == 1
    assert "unhealthy" in result.stderr and "force" in result.stderr

    daemon.signal(signal.SIGCONT)
    fleet.wait_for(
        "heartbeats to resume",
        lambda: fleet.node("gpu-c").get("statusReason") == "heartbeat lost; heartbeats resumed",
    )
    assert fleet.node("gpu-c")["status"] == "NODE_STATUS_UNHEALTHY"  # never back on its own
    result = fleet.cli("uncordon", "gpu-c", "--force")
    assert result.returncode == 0, result.stderr
    assert fleet.node("gpu-c")["status"] == "NODE_STATUS_ACTIVE"

    daemon.signal(signal.SIGINT)
    assert daemon.wait() == 0
    fleet.control_plane.signal(signal.SIGTERM)
    assert fleet.control_plane.wait() == 0


def test_control_plane_killed_and_restarted_loses_nothing(secure_fleet):
    fleet = secure_fleet
    control_plane = fleet.start_control_plane()
    first = fleet.start_daemon("gpu-d")
    second = fleet.start_daemon("gpu-e", drain_command="sleep 2; echo drained while alone")
    fleet.wait_for("two registered nodes", lambda: len(fleet.nodes()) == 2)

    assert fleet.cli("list", token="").returncode == 1
    denied = fleet.cli("list", token=JOIN_TOKEN)
    assert denied.returncode == 1 and "needs an admin token" in denied.stderr
    assert JOIN_TOKEN not in first.output()

    assert fleet.cli("cordon", "gpu-d", "--reason", "before the crash").returncode == 0
    drain = json.loads(fleet.cli("drain", "gpu-e", "-o", "json").stdout)["command"]
    fleet.wait_for(
        "the drain to reach the node",
        lambda: "running drain command" in second.output(),
        timeout=10,
    )
    events_before = json.loads(fleet.cli("events", "--limit", "1000", "-o", "json").stdout)

    control_plane.signal(signal.SIGKILL)
    control_plane.wait()
    # Both daemons notice, keep running, and the drain finishes while nobody listens.
    fleet.wait_for(
        "both daemons to notice",
        lambda: all("cannot reach the control plane" in d.output() for d in (first, second)),
    )
    fleet.wait_for(
        "the drain to finish while the control plane is down",
        lambda: (
            f"drain command {drain['commandId']} succeeded: drained while alone" in second.output()
        ),
    )
    assert first.proc.poll() is None and second.proc.poll() is None

    fleet.start_control_plane()
    nodes = fleet.nodes()
    assert set(nodes) == {"gpu-d", "gpu-e"}
    assert nodes["gpu-d"]["status"] == "NODE_STATUS_CORDONED"
    fleet.wait_for(
        "the drain acknowledged after the restart",
        lambda: fleet.node("gpu-e").get("status") == "NODE_STATUS_DRAINED",
        timeout=40,
    )
    command = json.loads(fleet.cli("get", "gpu-e", "-o", "json").stdout)
    assert command.get("openCommands") is None
    events_after = json.loads(fleet.cli("events", "--limit", "1000", "-o", "json").stdout)
    assert {e["eventId"] for e in events_before} <= {e["eventId"] for e in events_after}
    acked = [e for e in events_after if e["kind"] == "command.acked"]
    assert [(e["details"]["commandId"], e["reason"]) for e in acked] == [
        (drain["commandId"], "drained while alone")
    ]
    for node_id, daemon in (("gpu-d", first), ("gpu-e", second)):
        fleet.wait_for(
            f"fresh heartbeats from {node_id}", lambda n=node_id: _fresh(fleet, n), timeout=40
        )
        assert "the control plane answers again" in daemon.output()
        assert fleet.node(node_id)["status"] != "NODE_STATUS_UNHEALTHY"


def _fresh(fleet: Fleet, node_id: str) -> bool:
    beat = fleet.node(node_id).get("lastHeartbeatAt")
    return bool(beat) and _age(beat) < 2.5


def test_control_plane_stops_promptly_with_a_daemon_long_polling(fleet):
    # The default long-poll wait: a poll held to the end would keep the server up for 20 s.
    fleet.config.write_text(
        '[server]\nheartbeat_interval = "1s"\nheartbeat_timeout = "3s"\n'
        'health_check_interval = "2s"\ncommand_poll_wait = "20s"\n'
    )
    control_plane = fleet.start_control_plane()
    daemon = fleet.start_daemon("gpu-s")
    fleet.wait_status("gpu-s", "ACTIVE")
    fleet.wait_for("a first heartbeat", lambda: fleet.node("gpu-s").get("lastHeartbeatAt"))
    # The daemon sends its first long poll along with its first heartbeat: once the control plane
    # has answered a later heartbeat and still no poll, the poll is held.
    beats = fleet.answered()["SendHeartbeat"]
    fleet.wait_for(
        "the daemon's long poll to be held",
        lambda: (
            (answered := fleet.answered())["SendHeartbeat"] > beats
            and not answered["GetNodeCommands"]
        ),
    )

    started = time.monotonic()
    control_plane.signal(signal.SIGTERM)
    assert control_plane.wait(timeout=10) == 0, control_plane.output()
    elapsed = time.monotonic() - started
    assert elapsed < 3, f"the control plane took {elapsed:.1f}s to stop"
    assert "Traceback" not in control_plane.output()

    # The daemon outlives its control plane and retries with backoff.
    fleet.wait_for("the daemon to notice", lambda: "retrying with backoff" in daemon.output())
    assert daemon.proc.poll() is None, daemon.output()
