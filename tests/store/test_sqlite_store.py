from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio
from support.store_backends import StoreBackend

from navarch import model as m
from navarch.store import Change, NodeToken, SQLiteStore, StoreError
from navarch.store.schema import migrations

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _node(node_id: str, status: m.NodeStatus = m.NodeStatus.ACTIVE) -> m.Node:
    return m.Node(
        node_id=node_id,
        status=status,
        health=m.HealthStatus.UNKNOWN,
        labels={"rack": "r1"},
        gpus=(m.GpuInfo(index=0, uuid="GPU-0", memory_total_bytes=80 * 2**30),),
        registered_at=T0,
    )


def _event(event_id: str, node_id: str, kind: str = "node.registered") -> m.Event:
    return m.Event(event_id=event_id, time=T0, kind=kind, node_id=node_id, actor="admin")


def _command(command_id: str, status: m.CommandStatus) -> m.Command:
    return m.Command(
        command_id=command_id,
        node_id="n1",
        type=m.CommandType.DRAIN,
        status=status,
        parameters={"timeout": "300"},
        issued_at=T0,
    )


async def test_a_new_database_gets_every_migration(tmp_path: Path) -> None:
    """SQLite alone: its migrations and its journal mode (PostgreSQL's: test_postgres_store)."""
    path = tmp_path / "sub" / "navarch.db"
    async with SQLiteStore.open(path):
        pass
    rows = sqlite3.connect(path).execute("SELECT version, name FROM schema_version").fetchall()
    assert rows == [(v, name) for v, name, _ in migrations()]
    assert rows[0] == (1, "0001_initial.sql")
    journal = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "wal"


async def test_opening_again_applies_nothing_and_keeps_the_data(
    store_factory: StoreBackend,
) -> None:
    async with store_factory.open() as store:
        await store.commit(Change(nodes=(_node("n1"),)))
    async with store_factory.open() as store:
        assert (await store.load()).nodes == (_node("n1"),)
    [(count,)] = store_factory.execute("SELECT COUNT(*) FROM schema_version")
    assert count == store_factory.latest_version


async def test_a_database_from_a_newer_navarch_is_refused(store_factory: StoreBackend) -> None:
    async with store_factory.open() as store:
        location = store.location
    store_factory.execute(
        "INSERT INTO schema_version (version, name, applied_at) VALUES (999, 'x', 'now')"
    )
    with pytest.raises(StoreError) as refused:
        async with store_factory.open():
            pass
    message = str(refused.value)
    assert message.startswith(f"{location}: the database has schema version 999")
    assert f"knows ({store_factory.latest_version})" in message
    assert len(message.splitlines()) == 1


async def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    """SQLite alone: its database is a file."""
    path = tmp_path / "navarch.db"
    path.write_text("hello, I am a text file, certainly not SQLite" * 100)
    with pytest.raises(StoreError) as refused:
        async with SQLiteStore.open(path):
            pass
    assert str(refused.value).startswith(str(path))


async def test_concurrent_commits_share_transactions_and_all_become_durable(
    store_factory: StoreBackend,
) -> None:
    async with store_factory.open() as store:
        async with trio.open_nursery() as nursery:
            for i in range(300):
                change = Change(nodes=(_node(f"n{i:03}"),), events=(_event(f"e{i:03}", f"n{i}"),))
                nursery.start_soon(store.commit, change)
        # Every commit has returned, so every change is on disk, read by another connection.
        assert store_factory.execute("SELECT COUNT(*) FROM nodes") == [(300,)]
        assert store_factory.execute("SELECT COUNT(*) FROM events") == [(300,)]


async def test_queued_changes_and_heartbeats_are_written_on_close(
    store_factory: StoreBackend,
) -> None:
    beat = T0 + timedelta(minutes=5)
    async with store_factory.open(flush_interval=3600) as store:
        await store.commit(Change(nodes=(_node("n1"),)))
        store.commit_soon(Change(commands=(_command("c1", m.CommandStatus.DELIVERED),)))
        store.note_heartbeat("n1", beat, m.NodeMetrics(cpu_percent=3.0))
    async with store_factory.open() as store:
        state = await store.load()
    assert state.nodes[0].last_heartbeat_at == beat
    assert state.nodes[0].metrics == m.NodeMetrics(cpu_percent=3.0)
    assert [c.command_id for c in state.open_commands] == ["c1"]


async def test_load_returns_only_open_commands_and_token_hashes(
    store_factory: StoreBackend,
) -> None:
    async with store_factory.open() as store:
        commands = (
            _command("c1", m.CommandStatus.PENDING),
            _command("c2", m.CommandStatus.SUCCEEDED),
            _command("c3", m.CommandStatus.DELIVERED),
        )
        token = NodeToken(node_id="n1", token_hash="ab" * 32, issued_at=T0)
        await store.commit(Change(commands=commands, node_tokens=(token,)))
        state = await store.load()
        assert [c.command_id for c in state.open_commands] == ["c1", "c3"]
        assert state.node_tokens == {"n1": "ab" * 32}
        assert await store.get_command("c2") == commands[1]
        assert await store.get_command("missing") is None


async def test_events_are_listed_newest_first_with_filters_and_pages(
    store_factory: StoreBackend,
) -> None:
    async with store_factory.open() as store:
        events = [_event(f"e{i}", "n1" if i % 2 else "n2", f"k{i % 3}") for i in range(9)]
        await store.commit(Change(events=tuple(events)))
        page = await store.list_events(node_id="", kinds=(), limit=4, before="")
        assert [e.event_id for e in page] == ["e8", "e7", "e6", "e5"]
        older = await store.list_events(node_id="", kinds=(), limit=4, before="e5")
        assert [e.event_id for e in older] == ["e4", "e3", "e2", "e1"]
        mine = await store.list_events(node_id="n1", kinds=("k1", "k0"), limit=10, before="")
        assert [e.event_id for e in mine] == ["e7", "e3", "e1"]
        assert mine[0] == events[7]


async def test_ping_answers_while_the_database_works(store_factory: StoreBackend) -> None:
    async with store_factory.open() as store:
        await store.ping()
