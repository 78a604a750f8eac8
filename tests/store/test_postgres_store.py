"""What only the PostgreSQL store has: its own migrations, several control planes on one
database, fencing by the leadership lease, and errors that name the database without its
password. The rest of its behaviour is the store suite's (`store_factory`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import trio
from support.postgres import fresh_database

from navarch import model as m
from navarch.store import Change, Deposed, SQLiteStore, StoreError, open_store
from navarch.store.postgres import PostgresStore
from navarch.store.postgres_schema import migrations

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_database() as database:
        yield database


def _node(node_id: str) -> m.Node:
    return m.Node(
        node_id=node_id, status=m.NodeStatus.ACTIVE, health=m.HealthStatus.HEALTHY, registered_at=T0
    )


def _sql(url: str, statement: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        cursor = conn.execute(statement.encode(), params)
        return cursor.fetchall() if cursor.description else []


async def test_control_planes_opening_a_new_database_together_apply_each_migration_once(
    url: str,
) -> None:
    async def open_and_close() -> None:
        async with PostgresStore.open(url):
            pass

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(open_and_close)
    applied = _sql(url, "SELECT version, name FROM schema_version ORDER BY version")
    assert applied == [(version, name) for version, name, _ in migrations()]
    assert _sql(url, "SELECT COUNT(*) FROM leader_lease") == [(0,)]


async def test_two_stores_share_one_database(url: str) -> None:
    async with PostgresStore.open(url) as first, PostgresStore.open(url) as second:
        await first.commit(Change(nodes=(_node("n1"),)))
        assert [n.node_id for n in (await second.load()).nodes] == ["n1"]


async def test_a_write_that_fails_for_everyone_fails_every_caller_and_the_writer_goes_on(
    url: str,
) -> None:
    async with PostgresStore.open(url) as store:
        await store.commit(Change(nodes=(_node("n1"),)))
        _sql(url, "ALTER TABLE nodes RENAME TO nodes_away")
        with pytest.raises(StoreError, match="write failed"):
            await store.commit(Change(nodes=(_node("n2"),)))
        _sql(url, "ALTER TABLE nodes_away RENAME TO nodes")
        await store.commit(Change(nodes=(_node("n3"),)))
        assert store.failed_changes == 1
        assert [n.node_id for n in (await store.load()).nodes] == ["n1", "n3"]


def _lease(url: str, token: int) -> None:
    _sql(
        url,
        "INSERT INTO leader_lease (name, holder, token, expires_at) "
        "VALUES ('control-plane', 'a', %s, now() + interval '1 minute') "
        "ON CONFLICT (name) DO UPDATE SET holder = 'b', token = excluded.token",
        token,
    )


async def test_a_deposed_leaders_writes_are_refused_whole(url: str) -> None:
    async with PostgresStore.open(url, flush_interval=3600) as store:
        store.fencing = ("control-plane", 1)
        with pytest.raises(Deposed, match=r"lease control-plane: token 1, now no holder"):
            await store.commit(Change(nodes=(_node("n0"),)))
        _lease(url, 1)
        await store.commit(Change(nodes=(_node("n1"),)))
        # Another control plane takes the lease: a new term, a new token.
        _lease(url, 2)
        with pytest.raises(Deposed) as refused:
            await store.commit(
                Change(nodes=(_node("n2"),), events=(m.Event(event_id="e1", time=T0, kind="k"),))
            )
        assert str(refused.value) == (
            f"{store.location}: this control plane no longer leads (lease control-plane: "
            "token 1, now token 2); its write was refused"
        )
        with pytest.raises(Deposed):
            await store.prune_nodes(["n1"], T0)
        assert (store.deposed_writes, store.failed_changes) == (2, 0)
        # Reads go on, and show that nothing of the refused writes arrived.
        assert [n.node_id for n in (await store.load()).nodes] == ["n1"]
        assert await store.list_events(node_id="", kinds=(), limit=10, before="") == []
        # The heartbeats still in memory are refused too, when the store writes them at close.
        store.note_heartbeat("n1", T0, m.NodeMetrics(cpu_percent=5.0))
    async with PostgresStore.open(url) as store:
        assert [(n.node_id, n.metrics) for n in (await store.load()).nodes] == [("n1", None)]
        store.fencing = ("control-plane", 2)
        await store.commit(Change(nodes=(_node("n2"),)))
        assert [n.node_id for n in (await store.load()).nodes] == ["n1", "n2"]


async def test_an_unreachable_server_is_one_line_without_the_password() -> None:
    target = "postgresql://navarch:hunter2@127.0.0.1:1/navarch"
    with pytest.raises(StoreError) as refused:
        async with open_store(target):
            pass
    message = str(refused.value)
    assert message.startswith(
        "postgresql://<redacted>@127.0.0.1:1/navarch: cannot open the database: "
    )
    assert "hunter2" not in message
    assert len(message.splitlines()) == 1


async def test_a_store_url_of_another_kind_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as refused:
        async with open_store("mysql://root:pw@db/navarch"):
            pass
    assert str(refused.value) == (
        "mysql://<redacted>@db/navarch: unknown store URL scheme 'mysql'; use postgresql://... "
        "for PostgreSQL, or a path (or sqlite:PATH) for SQLite"
    )
    async with open_store(f"sqlite:{tmp_path / 'navarch.db'}") as store:
        assert isinstance(store, SQLiteStore)
        assert store.location == str(tmp_path / "navarch.db")


async def test_a_write_goes_through_after_the_server_drops_the_stores_connections(
    url: str,
) -> None:
    async with PostgresStore.open(url) as store:
        # Every connection of the pool busy at once, so the pool holds several.
        async with trio.open_nursery() as nursery:
            for i in range(8):
                nursery.start_soon(store.get_command, f"c{i}")
        await store.commit(Change(nodes=(_node("n1"),)))
        _sql(
            url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        await store.commit(Change(nodes=(_node("n2"),)))
        assert [n.node_id for n in (await store.load()).nodes] == ["n1", "n2"]
        assert store.failed_changes == 0


async def test_a_heartbeat_postgresql_cannot_take_leaves_the_others_written(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    later = T0.replace(hour=13)
    async with PostgresStore.open(url, flush_interval=3600) as store:
        await store.commit(Change(nodes=(_node("n1"), _node("n2"))))
        store.note_heartbeat("n1", later, None)
        # PostgreSQL's text holds no NUL, so this one heartbeat fails the flush's one statement.
        store.note_heartbeat("n\x00", later, None)
        store.note_heartbeat("n2", later, m.NodeMetrics(cpu_percent=7.0))
    async with PostgresStore.open(url) as store:
        nodes = (await store.load()).nodes
    assert [(n.node_id, n.last_heartbeat_at, n.metrics) for n in nodes] == [
        ("n1", later, None),
        ("n2", later, m.NodeMetrics(cpu_percent=7.0)),
    ]
    assert caplog.text.count("heartbeat not written") == 1


async def test_the_postgresql_schema_has_every_table_and_column_of_the_sqlite_one(
    url: str, tmp_path: Path
) -> None:
    """A migration of the SQLite store needs its twin in migrations_pg/ (and `store migrate`
    copies by these names)."""
    async with PostgresStore.open(url), SQLiteStore.open(tmp_path / "navarch.db"):
        pass
    lite = sqlite3.connect(tmp_path / "navarch.db")
    sqlite_columns = {
        (table, column)
        for (table,) in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        for _, column, *_ in lite.execute(f"PRAGMA table_info({table})")
    }
    lite.close()
    pg_columns = set(
        _sql(
            url,
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND column_name != 'rowid'",
        )
    )
    assert sqlite_columns == pg_columns - {
        ("leader_lease", c) for c in ("name", "holder", "token", "expires_at", "address")
    }


async def test_a_url_libpq_cannot_read_is_refused_without_its_password() -> None:
    with pytest.raises(StoreError) as refused:
        async with open_store("postgresql://navarch:sec%ZZret@db/navarch"):
            pass
    assert str(refused.value) == (
        "postgresql://<redacted>@db/navarch: not a PostgreSQL URL of libpq's form "
        "(postgresql://USER@HOST:PORT/DB?PARAMETER=VALUE)"
    )


async def test_each_session_bounds_its_statements_and_idle_transactions(url: str) -> None:
    async with PostgresStore.open(url) as store:
        settings = await store.run_sync(
            lambda conn: [
                conn.execute(f"SHOW {name}".encode()).fetchone()
                for name in ("statement_timeout", "idle_in_transaction_session_timeout")
            ]
        )
    assert settings == [("30s",), ("10s",)]
