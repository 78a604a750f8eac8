"""A change the store cannot write fails its own callers alone, and rows that do not read back are
set aside at load, so that one bad value never stops the writer or the control plane."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import attrs
import pytest
import trio
from support.store_backends import StoreBackend

from navarch import model as m
from navarch.store import Change, SQLiteStore, StoreError

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _node(node_id: str, **fields: object) -> m.Node:
    node = m.Node(
        node_id=node_id,
        status=m.NodeStatus.CORDONED,
        health=m.HealthStatus.HEALTHY,
        labels={"rack": "r1"},
        registered_at=T0,
    )
    return attrs.evolve(node, **fields)


BAD = {
    "surrogate": _node("bad-1", hostname="\ud800"),
    "surrogate in JSON": _node("bad-2", labels={"a": "\udfff"}),
    "infinity": _node("bad-3", metrics=m.NodeMetrics(cpu_percent=float("inf"))),
    "NaN": _node("bad-4", metrics=m.NodeMetrics(cpu_percent=float("nan"))),
    "year 999": _node("bad-5", registered_at=datetime(999, 1, 1, tzinfo=UTC)),
}


async def test_a_change_that_cannot_be_written_fails_its_callers_alone(
    store_factory: StoreBackend,
) -> None:
    failed: list[str] = []
    async with store_factory.open() as store:

        async def commit(name: str, node: m.Node) -> None:
            try:
                await store.commit(Change(nodes=(node,)))
            except StoreError:
                failed.append(name)

        # Queued together, so that good and bad changes share the writer's batches.
        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(commit, f"good-{i}", _node(f"good-{i:02}"))
            for name, node in BAD.items():
                nursery.start_soon(commit, name, node)
        assert sorted(failed) == sorted(BAD)
        assert store.failed_changes == len(BAD)
        # The writer goes on.
        await store.commit(Change(nodes=(_node("later"),)))
    async with store_factory.open() as store:
        nodes = (await store.load()).nodes
    assert [n.node_id for n in nodes] == [f"good-{i:02}" for i in range(20)] + ["later"]


async def test_a_write_that_fails_for_everyone_fails_every_caller_and_the_writer_goes_on(
    tmp_path: Path,
) -> None:
    """SQLite alone: a second connection's exclusive lock (PostgreSQL's: test_postgres_store)."""
    path = tmp_path / "navarch.db"
    async with SQLiteStore.open(path) as store:
        await store.commit(Change(nodes=(_node("n1"),)))
        blocker = sqlite3.connect(path, isolation_level=None, timeout=0)
        blocker.execute("PRAGMA busy_timeout = 0")
        blocker.execute("BEGIN EXCLUSIVE")
        store._conn.execute("PRAGMA busy_timeout = 0")  # type: ignore[union-attr]
        with pytest.raises(StoreError, match="write failed"):
            await store.commit(Change(nodes=(_node("n2"),)))
        blocker.execute("ROLLBACK")
        await store.commit(Change(nodes=(_node("n3"),)))
    async with SQLiteStore.open(path) as store:
        assert [n.node_id for n in (await store.load()).nodes] == ["n1", "n3"]


async def test_rows_that_do_not_read_back_are_set_aside_and_the_store_still_loads(
    store_factory: StoreBackend, caplog: pytest.LogCaptureFixture
) -> None:
    _tamper = store_factory.execute
    async with store_factory.open() as store:
        nodes = [_node(f"n{i}", metrics=m.NodeMetrics(cpu_percent=1.0)) for i in range(5)]
        await store.commit(Change(nodes=tuple(nodes)))
    # What older versions wrote: a year of three digits, Infinity and an escaped lone surrogate.
    _tamper("UPDATE nodes SET registered_at = '999-01-01T00:00:00Z' WHERE node_id = 'n1'")
    _tamper("UPDATE nodes SET labels = '{\"a\":\"\\ud800\"}' WHERE node_id = 'n2'")
    _tamper("UPDATE nodes SET status = 'sleeping' WHERE node_id = 'n3'")
    _tamper("UPDATE nodes SET metrics = '{\"cpu_percent\":Infinity}' WHERE node_id = 'n4'")
    caplog.set_level(logging.ERROR, "navarch.store")
    async with store_factory.open() as store:
        state = await store.load()
        assert store.unreadable_rows == 4
    # n4 keeps its place without its last metrics; the others are moved aside.
    assert [(n.node_id, n.status, n.metrics) for n in state.nodes] == [
        ("n0", m.NodeStatus.CORDONED, m.NodeMetrics(cpu_percent=1.0)),
        ("n4", m.NodeStatus.CORDONED, None),
    ]
    assert caplog.text.count("unreadable row") == 4
    quarantined = _tamper("SELECT source, row_key, kept FROM quarantine")
    assert sorted(quarantined) == [
        ("nodes", "'n1'", 0),
        ("nodes", "'n2'", 0),
        ("nodes", "'n3'", 0),
        ("nodes", "'n4'", 1),
    ]
    [(body,)] = _tamper("SELECT body FROM quarantine WHERE row_key = ?", "'n3'")
    assert '"sleeping"' in body
    # Set aside once: the next start finds nothing to report.
    async with store_factory.open() as store:
        assert [n.node_id for n in (await store.load()).nodes] == ["n0", "n4"]
        assert store.unreadable_rows == 0


async def test_a_load_that_may_not_write_leaves_unreadable_rows_in_place(
    store_factory: StoreBackend,
) -> None:
    """A follower's snapshot: the row is left out of the state and left to the leader."""
    async with store_factory.open() as store:
        await store.commit(Change(nodes=(_node("n0"), _node("n1"))))
    store_factory.execute("UPDATE nodes SET status = 'sleeping' WHERE node_id = 'n1'")
    async with store_factory.open() as store:
        state = await store.load(set_aside=False)
        assert [n.node_id for n in state.nodes] == ["n0"]
    assert store_factory.execute("SELECT source FROM quarantine") == []
    assert store_factory.execute("SELECT node_id FROM nodes ORDER BY node_id") == [("n0",), ("n1",)]
    async with store_factory.open() as store:
        await store.load()
    assert store_factory.execute("SELECT node_id FROM nodes ORDER BY node_id") == [("n0",)]


async def test_events_that_do_not_read_back_are_left_out_of_a_listing(
    store_factory: StoreBackend,
) -> None:
    events = tuple(
        m.Event(event_id=f"e{i}", time=T0, kind="node.registered", node_id="n1") for i in range(3)
    )
    async with store_factory.open() as store:
        await store.commit(Change(events=events))
    store_factory.execute("UPDATE events SET details = '{\"x\":NaN}' WHERE event_id = 'e1'")
    async with store_factory.open() as store:
        listed = await store.list_events(node_id="", kinds=(), limit=10, before="")
        assert [e.event_id for e in listed] == ["e2", "e0"]
        assert store.unreadable_rows == 1
