"""`navarch store migrate` moves a SQLite store's state into PostgreSQL, run as a user runs it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import trio
from support.control_plane_process import control_plane_process
from support.navarch_process import run_navarch
from support.postgres import fresh_database

from navarch import model as m
from navarch.store import (
    Change,
    DecisionState,
    HealthReport,
    NodeToken,
    RemediationSwitch,
    SQLiteStore,
    StoredState,
)
from navarch.store.postgres import PostgresStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _fleet() -> Change:
    nodes = tuple(
        m.Node(
            node_id=f"gpu-{i}",
            status=status,
            health=m.HealthStatus.HEALTHY,
            pool="train",
            labels={"rack": f"r{i}"},
            gpus=(m.GpuInfo(index=0, uuid=f"GPU-{i}", memory_total_bytes=80 * 2**30),),
            registered_at=T0,
            last_heartbeat_at=T0,
            metrics=m.NodeMetrics(cpu_percent=12.5),
        )
        for i, status in enumerate(
            (m.NodeStatus.ACTIVE, m.NodeStatus.CORDONED, m.NodeStatus.DRAINING)
        )
    )
    xid = m.HealthEvent(type=m.HealthEventType.XID, time=T0, gpu_index=0, xid=79)
    return Change(
        nodes=nodes,
        commands=(
            m.Command(
                command_id="c1",
                node_id="gpu-2",
                type=m.CommandType.DRAIN,
                status=m.CommandStatus.DELIVERED,
                parameters={"grace": "30s"},
                issued_at=T0,
            ),
            m.Command(
                command_id="c0",
                node_id="gpu-1",
                type=m.CommandType.CORDON,
                status=m.CommandStatus.SUCCEEDED,
                issued_at=T0,
                completed_at=T0,
            ),
        ),
        events=tuple(
            m.Event(event_id=f"e{i}", time=T0, kind="node.registered", node_id=n.node_id)
            for i, n in enumerate(nodes)
        ),
        health_reports=(HealthReport(report_id="r1", node_id="gpu-1", events=(xid,)),),
        node_tokens=tuple(
            NodeToken(node_id=n.node_id, token_hash=f"{i:064x}", issued_at=T0)
            for i, n in enumerate(nodes)
        ),
        instances=(
            m.InstanceRecord(
                instance_id="i-1",
                provider="fake",
                pool="train",
                status=m.InstanceStatus.RUNNING,
                node_id="gpu-0",
                created_at=T0,
            ),
        ),
        remediations=(
            m.Remediation(
                episode_id="ep1",
                node_id="gpu-2",
                pool="train",
                step=m.RemediationStep.HELD,
                started_at=T0,
            ),
        ),
        remediation_switches=(RemediationSwitch(kind="breaker", pool="train", since=T0),),
        decisions=(DecisionState(scope="pool.floor", key="train", value="2", updated_at=T0),),
    )


async def _sqlite_store(path: Path) -> StoredState:
    async with SQLiteStore.open(path) as store:
        await store.commit(_fleet())
        return await store.load()


async def _postgres_state(url: str) -> tuple[StoredState, list[m.Event]]:
    async with PostgresStore.open(url) as store:
        events = await store.list_events(node_id="", kinds=(), limit=100, before="")
        return await store.load(), events


@pytest.mark.slow
def test_a_sqlite_store_moves_to_postgresql_whole(tmp_path: Path) -> None:
    path = tmp_path / "navarch.db"
    before = trio.run(_sqlite_store, path)
    with fresh_database() as url:
        moved = run_navarch("store", "migrate", "--from", f"sqlite:{path}", "--to", url)
        assert moved.returncode == 0, moved.stderr
        lines = moved.stdout.splitlines()
        assert lines[0].startswith(f"moved {path} to postgresql://<redacted>@127.0.0.1")
        assert lines[0].endswith(" in one transaction:")
        counts = dict(line.strip().split(": ") for line in lines[1:])
        assert counts["nodes"] == "3 rows"
        assert counts["events"] == "3 rows"
        assert counts["commands"] == "2 rows"
        assert counts["health_events"] == "1 rows"
        assert counts["decision_state"] == "1 rows"
        after, events = trio.run(_postgres_state, url)
        assert after == before
        assert [e.event_id for e in events] == ["e2", "e1", "e0"]

        # Once more: the database now holds a fleet, and only --replace replaces it.
        again = run_navarch("store", "migrate", "--from", str(path), "--to", url)
        assert again.returncode == 1
        assert again.stderr.strip().splitlines() == [
            f"navarch: {url.replace('postgres@', '<redacted>@')}: already holds state (tables "
            "commands, decision_state, events, health_events, instances, node_tokens, nodes, "
            "remediation_switches, remediations); move into an empty database, or pass "
            "--replace to replace what it holds"
        ]
        replaced = run_navarch("store", "migrate", "--from", str(path), "--to", url, "--replace")
        assert replaced.returncode == 0, replaced.stderr
        assert trio.run(_postgres_state, url)[0] == before


@pytest.mark.slow
def test_a_store_a_control_plane_runs_on_is_not_moved(tmp_path: Path) -> None:
    data = tmp_path / "data"
    args = ("--listen", "127.0.0.1:0", "--data-dir", str(data))
    env = {"NAVARCH_ADMIN_TOKEN": "", "NAVARCH_JOIN_TOKEN": ""}
    with fresh_database() as url, control_plane_process(*args, env=env) as (process, _, store):
        refused = run_navarch("store", "migrate", "--from", store, "--to", url)
        assert refused.returncode == 1
        [line] = refused.stderr.strip().splitlines()
        assert line.startswith(f"navarch: {store} is in use by another navarch process (pid ")
        assert line.endswith("; stop it before moving its store")
        assert process.poll() is None
        with psycopg.connect(url) as conn:
            assert conn.execute(
                "SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'"
            ).fetchone() == (0,)
