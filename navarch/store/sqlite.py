"""The embedded store: one SQLite file in WAL mode, written by one task with group commit
(`navarch.store.group_commit`). SQLite itself runs in a worker thread, one call at a time.

In virtual time (`trio.testing.MockClock` with autojump, as the simulator and the tests use it)
a task waiting for a thread looks idle, so the clock would jump while a write is in flight. For
that case `threaded=False` runs SQLite on the trio thread itself; each call then blocks the loop
for the few hundred microseconds the write takes.

A change that cannot be written (a value the store's format refuses, a constraint, a full disk)
fails its own callers alone: when a batch fails, its changes are written again each in a savepoint
of their own, the good ones still in one commit, and the caller of a failed one gets a
`StoreError`. The writer itself never stops for one change. Rows that do not read back at load are
set aside (`navarch.store.quarantine`), so the control plane still starts.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import TypeVar, TypeVarTuple

import trio

from navarch.clock import format_timestamp
from navarch.model import Command, Event, NodeMetrics, Remediation
from navarch.store import rows, schema
from navarch.store import sqlite_sql as sql
from navarch.store.group_commit import Fencing, GroupCommit, Heartbeats
from navarch.store.loading import load_state
from navarch.store.lock import StoreLock
from navarch.store.protocol import (
    Change,
    RemediationSwitch,
    StoredState,
    StoreError,
)
from navarch.store.quarantine import Quarantine
from navarch.store.writes import writes

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

log = logging.getLogger("navarch.store")

# A node whose last metrics or last health report do not read keeps its place without them.


class SQLiteStore:
    """A `Store` on one SQLite file. Open it with `async with SQLiteStore.open(path)`."""

    def __init__(self, path: str, *, threaded: bool, flush_interval: float) -> None:
        self.location = path
        self._threaded = threaded
        self._limiter = trio.CapacityLimiter(1)
        self._conn: sqlite3.Connection | None = None
        self._rows = rows.RowReader(path)
        self.quarantine = Quarantine(path)
        self._writer = GroupCommit(path, self._write_batch, flush_interval)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        path: str | Path,
        *,
        threaded: bool = True,
        flush_interval: float = 1.0,
        exclusive: bool = True,
    ) -> AsyncIterator[SQLiteStore]:
        """Opens (creating and migrating if needed) the database, and runs its writer.

        Leaving the block writes everything still queued, heartbeats included. `exclusive` takes
        the store's lock, so a second owner stops at once (`StoreInUse`); a test that only looks
        at a store another one owns passes False.
        """
        store = cls(str(path), threaded=threaded, flush_interval=flush_interval)
        # One owner per store (navarch.store.lock): a second process stops here, with one line.
        lock = StoreLock(store.location) if exclusive and store.location != ":memory:" else None
        if lock is not None:
            Path(store.location).parent.mkdir(parents=True, exist_ok=True)
            lock.acquire()
        try:
            await store._run(store._connect)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(store._writer.run)
                try:
                    yield store
                finally:
                    store._writer.close()
        finally:
            await store._run(store._close)
            if lock is not None:
                lock.release()

    async def _run(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        if self._threaded:
            return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        await trio.lowlevel.checkpoint()
        return fn(*args)

    def _connect(self) -> None:
        if self.location != ":memory:":
            Path(self.location).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.location, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA busy_timeout = 5000")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.location}: cannot open the database: {exc}") from None
        try:
            schema.migrate(conn, self.location)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.location}: the store is closed")
        return self._conn

    @property
    def unreadable_rows(self) -> int:
        return self.quarantine.count

    @property
    def failed_changes(self) -> int:
        return self._writer.failed_changes

    @failed_changes.setter
    def failed_changes(self, value: int) -> None:
        self._writer.failed_changes = value

    async def commit(self, change: Change) -> None:
        await self._writer.commit(change)

    def commit_soon(self, change: Change) -> None:
        self._writer.commit_soon(change)

    def note_heartbeat(self, node_id: str, at: datetime, metrics: NodeMetrics | None) -> None:
        self._writer.note_heartbeat(node_id, at, metrics)

    async def _write_batch(
        self, changes: list[Change], heartbeats: Heartbeats, fencing: Fencing
    ) -> list[Exception | None]:
        """`fencing` is always None: one process owns a SQLite store (see `lock`)."""
        return await self._run(self._write, changes, heartbeats)

    def _write(self, changes: list[Change], heartbeats: Heartbeats) -> list[Exception | None]:
        """Writes the changes and heartbeats in one transaction; returns each change's error."""
        conn = self._db()
        try:
            with _transaction(conn):
                for change in changes:
                    self._apply(conn, change)
                conn.executemany(sql.UPDATE_HEARTBEAT, _heartbeat_rows(heartbeats))
            return [None] * len(changes)
        except Exception:
            pass
        # One change may be at fault: each goes in a savepoint of its own, in one commit still.
        errors: list[Exception | None] = []
        with _transaction(conn):
            for change in changes:
                errors.append(_in_savepoint(conn, self._apply, conn, change))
            for row in _heartbeat_rows(heartbeats):
                error = _in_savepoint(conn, conn.execute, sql.UPDATE_HEARTBEAT, row)
                if error is not None:
                    log.error("store=%s heartbeat not written: %r", self.location, error)
        return errors

    @staticmethod
    def _apply(conn: sqlite3.Connection, change: Change) -> None:
        for statement, params in writes(change, sql):
            conn.executemany(statement, params)

    async def load(self, *, set_aside: bool = True) -> StoredState:
        """The state to start from; rows that do not read are set aside and logged first."""
        return await self._run(lambda: self._load(set_aside))

    def _load(self, set_aside: bool) -> StoredState:
        conn = self._db()
        state = load_state(conn, self.quarantine.read, sql, self._rows)
        if set_aside:
            self.quarantine.move_aside(conn)
        else:
            self.quarantine.forget()
        return state

    async def list_remediations(self, *, pool: str, node_id: str, limit: int) -> list[Remediation]:
        return await self._run(self._list_remediations, pool, node_id, limit)

    def _list_remediations(self, pool: str, node_id: str, limit: int) -> list[Remediation]:
        where: list[str] = []
        params: list[str] = []
        if pool:
            where.append("pool = ?")
            params.append(pool)
        if node_id:
            where.append("node_id = ?")
            params.append(node_id)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = self._db().execute(
            f"SELECT {sql.REMEDIATION_COLUMNS} FROM remediations {clause}"
            "ORDER BY episode_id DESC LIMIT ?",
            (*params, limit),
        )
        return self.quarantine.skip(rows, self._rows.remediation)

    async def get_command(self, command_id: str) -> Command | None:
        return await self._run(self._get_command, command_id)

    def _get_command(self, command_id: str) -> Command | None:
        row = (
            self._db()
            .execute(
                f"SELECT {sql.COMMAND_COLUMNS} FROM commands WHERE command_id = ?", (command_id,)
            )
            .fetchone()
        )
        found = [] if row is None else self.quarantine.skip([row], self._rows.command)
        return found[0] if found else None

    async def list_commands(self, *, node_id: str, limit: int, before: str) -> list[Command]:
        return await self._run(self._list_commands, node_id, limit, before)

    def _list_commands(self, node_id: str, limit: int, before: str) -> list[Command]:
        # commands_by_node_status finds the node's rows; a node has few enough to sort.
        clause, params = ("AND command_id < ? ", (node_id, before)) if before else ("", (node_id,))
        rows = self._db().execute(
            f"SELECT {sql.COMMAND_COLUMNS} FROM commands WHERE node_id = ? {clause}"
            "ORDER BY command_id DESC LIMIT ?",
            (*params, limit),
        )
        return self.quarantine.skip(rows, self._rows.command)

    async def remediation_switches(self) -> list[RemediationSwitch]:
        return await self._run(self._remediation_switches)

    def _remediation_switches(self) -> list[RemediationSwitch]:
        rows = self._db().execute(
            "SELECT kind, pool, reason, since FROM remediation_switches ORDER BY kind, pool"
        )
        return self.quarantine.skip(rows, self._rows.switch)

    async def list_events(
        self, *, node_id: str, kinds: Sequence[str], limit: int, before: str
    ) -> list[Event]:
        return await self._run(self._list_events, node_id, tuple(kinds), limit, before)

    def _list_events(
        self, node_id: str, kinds: tuple[str, ...], limit: int, before: str
    ) -> list[Event]:
        where: list[str] = []
        params: list[str] = []
        if node_id:
            where.append("node_id = ?")
            params.append(node_id)
        if kinds:
            where.append(f"kind IN ({', '.join('?' for _ in kinds)})")
            params.extend(kinds)
        if before:
            where.append("event_id < ?")
            params.append(before)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = self._db().execute(
            f"SELECT {sql.EVENT_COLUMNS} FROM events {clause}ORDER BY event_id DESC LIMIT ?",
            (*params, limit),
        )
        return self.quarantine.skip(rows, self._rows.event)

    async def prune_nodes(self, node_ids: Sequence[str], events_before: datetime) -> None:
        await self._run(self._prune_nodes, tuple(node_ids), format_timestamp(events_before))

    def _prune_nodes(self, node_ids: tuple[str, ...], events_before: str) -> None:
        db = self._db()
        try:
            db.execute("BEGIN")
            for table in ("nodes", "node_tokens", "commands", "health_events"):
                db.executemany(f"DELETE FROM {table} WHERE node_id = ?", [(n,) for n in node_ids])
            db.executemany(
                "DELETE FROM decision_state WHERE scope LIKE 'node.%' AND key = ?",
                [(n,) for n in node_ids],
            )
            # Events of nodes gone from the store, once they are as old as the retention.
            db.execute(
                "DELETE FROM events WHERE time < ? AND node_id != '' "
                "AND node_id NOT IN (SELECT node_id FROM nodes)",
                (events_before,),
            )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            db.execute("ROLLBACK")
            raise StoreError(f"{self.location}: pruning terminated nodes failed: {exc}") from None

    async def ping(self) -> None:
        await self._run(self._ping)

    def _ping(self) -> None:
        try:
            self._db().execute("SELECT MAX(version) FROM schema_version").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.location}: {exc}") from None


def _heartbeat_rows(heartbeats: Heartbeats) -> list[tuple[str, str | None, str]]:
    return [(at, metrics, node_id) for node_id, (at, metrics) in heartbeats.items()]


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _in_savepoint(
    conn: sqlite3.Connection, fn: Callable[[*Ts], object], *args: *Ts
) -> Exception | None:
    """Runs `fn` in a savepoint; on any error undoes what it wrote and returns the error."""
    conn.execute("SAVEPOINT change")
    try:
        fn(*args)
    except Exception as exc:
        conn.execute("ROLLBACK TO change")
        conn.execute("RELEASE change")
        return exc
    conn.execute("RELEASE change")
    return None
