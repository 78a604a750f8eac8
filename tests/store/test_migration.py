"""A database made by navarch 0.1.0 opens, migrated, with every row as the domain reads it.

`data/release-0.1.0.db` was written by the 0.1.0 control plane (a registered, drained and
terminated node, health reports, commands, a held remediation episode, instance records, a
paused fleet and an open breaker), when the store still kept the wire format.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from navarch.model import (
    CommandStatus,
    CommandType,
    HealthEventType,
    HealthStatus,
    InstanceStatus,
    NodeStatus,
    RemediationStep,
)
from navarch.store import SQLiteStore
from navarch.store.schema import latest_version

RELEASE = Path(__file__).parent / "data" / "release-0.1.0.db"


async def test_a_release_database_is_migrated_and_reads_whole(tmp_path: Path) -> None:
    path = tmp_path / "navarch.db"
    shutil.copy(RELEASE, path)
    async with SQLiteStore.open(path) as store:
        state = await store.load()
        events = await store.list_events(node_id="", kinds=(), limit=1000, before="")
        episodes = await store.list_remediations(pool="", node_id="", limit=100)
    nodes = {n.node_id: n for n in state.nodes}
    assert (nodes["gpu-1"].status, nodes["gpu-1"].health) == (
        NodeStatus.TERMINATED,
        HealthStatus.UNHEALTHY,
    )
    assert nodes["gpu-1"].labels == {"team": "ml", "navarch.io/rack": "r1"}
    assert nodes["gpu-1"].gpus[1].pci_bus_id == "00000000:0B:00.0"
    assert nodes["gpu-1"].gpus[1].memory_total_bytes == 85899345920
    assert nodes["gpu-1"].metrics is not None
    assert nodes["gpu-1"].metrics.gpus[0].temperature_c == 64.0
    [xid] = nodes["gpu-1"].last_health_events
    assert (xid.type, xid.gpu_index, xid.xid) == (HealthEventType.XID, 1, 79)
    assert xid.details == {"pci_bus_id": "0000:0B:00.0", "source": "kmsg"}
    assert nodes["gpu-2"].status is NodeStatus.UNHEALTHY
    [command] = state.open_commands
    assert (command.type, command.status) == (CommandType.DRAIN, CommandStatus.DELIVERED)
    assert command.parameters == {"grace": "30s"}
    assert {r.status for r in state.instances} == {
        InstanceStatus.RUNNING,
        InstanceStatus.REGISTERING,
    }
    assert [e.step for e in state.open_remediations] == [RemediationStep.HELD]
    assert {e.step for e in episodes} == {RemediationStep.HELD, RemediationStep.CANCELLED}
    assert {(s.kind, s.pool) for s in state.remediation_switches} == {
        ("breaker", "train"),
        ("pause", ""),
    }
    assert len(state.node_tokens) == 3
    changed = next(e for e in events if e.kind == "node.health_changed")
    assert changed.details["to"] in {h.value for h in HealthStatus}
    acked = {e.details["type"] for e in events if e.kind == "command.acked"}
    assert acked == {"drain", "terminate"}
    assert {e.details["result"] for e in events if e.kind == "command.acked"} == {"succeeded"}
    moved = next(e for e in events if e.to_status is NodeStatus.TERMINATED)
    assert moved.from_status is NodeStatus.DRAINING
    version = sqlite3.connect(path).execute("SELECT MAX(version) FROM schema_version").fetchone()
    assert version == (latest_version(),)


async def test_the_migrated_store_serves_the_same_control_plane(tmp_path: Path) -> None:
    """Opened twice, the migrated database is as the first opening left it."""
    path = tmp_path / "navarch.db"
    shutil.copy(RELEASE, path)
    async with SQLiteStore.open(path) as store:
        first = await store.load()
    async with SQLiteStore.open(path) as store:
        assert await store.load() == first
