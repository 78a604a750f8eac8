"""The store on PostgreSQL, for control planes that share one database.

psycopg 3's own async API needs asyncio, so the store runs psycopg's blocking API in trio worker
threads, on a connection pool and limited by a `trio.CapacityLimiter` of the pool's size.
Writes go through one group-commit writer and heartbeats are soft state, as on SQLite
(`navarch.store.postgres_writer`); reads take any pooled connection, so they do not wait for the
writer. The schema keeps the SQLite store's format, so `navarch.store.rows` maps rows for both.

Unlike the SQLite store, no lock file makes one process the owner: several control planes may
open the same database, and leadership (a lease row and its fencing token, `fencing`) decides
which one acts.

`threaded=False` runs psycopg on the trio thread itself, for tests on a `trio.testing.MockClock`
with autojump, as for the SQLite store.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TypeVar, TypeVarTuple

import psycopg
import psycopg_pool
import trio
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow

from navarch.clock import format_timestamp
from navarch.model import Command, Event, NodeMetrics, Remediation
from navarch.redaction import redact_url
from navarch.store import postgres_schema, postgres_writer, rows
from navarch.store import postgres_sql as sql
from navarch.store.group_commit import Fencing, GroupCommit, Heartbeats
from navarch.store.loading import load_state
from navarch.store.postgres_quarantine import PgQuarantine
from navarch.store.postgres_writer import Connection
from navarch.store.protocol import (
    Change,
    RemediationSwitch,
    StoredState,
    StoreError,
)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

log = logging.getLogger("navarch.store")

# A statement that runs longer is cancelled: a worker thread cannot be, and a stuck one would
# hold its place in the pool. A transaction left idle (its client cut off mid-way) is ended, so
# that the locks it holds, the lease row's among them, do not hold off another control plane.
_SESSION = (
    "SET statement_timeout = '30s'",
    "SET idle_in_transaction_session_timeout = '10s'",
)
# libpq settings that the URL may override: a server that went silent (a network partition)
# fails a connection within about half a minute, rather than hanging a worker thread for hours.
_CONNECTION_DEFAULTS = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
}
_CONNECT_TIMEOUT = 10
# Connections held: the writer's and the readers'.
_POOL_SIZE = 4

# A node whose last metrics or last health report do not read keeps its place without them.


class PostgresStore:
    """A `Store` on a PostgreSQL database. Open it with `async with PostgresStore.open(url)`."""

    def __init__(self, url: str, *, threaded: bool, flush_interval: float) -> None:
        self.location = redact_url(url)
        # (lease name, token) every write must still hold; None writes unfenced.
        self.fencing: Fencing = None
        self._conninfo = _conninfo(url, self.location)
        self._threaded = threaded
        self._limiter = trio.CapacityLimiter(_POOL_SIZE)
        self._pool: psycopg_pool.ConnectionPool[Connection] | None = None
        self._rows = rows.RowReader(self.location)
        self.quarantine = PgQuarantine(self.location)
        self._writer = GroupCommit(
            self.location, self._write, flush_interval, fencing=lambda: self.fencing
        )

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        url: str,
        *,
        threaded: bool = True,
        flush_interval: float = 1.0,
    ) -> AsyncIterator[PostgresStore]:
        """Connects (creating and migrating the schema if needed), and runs the writer.

        Leaving the block writes everything still queued, heartbeats included.
        """
        store = cls(url, threaded=threaded, flush_interval=flush_interval)
        await store._call(store._connect)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(store._writer.run)
                try:
                    yield store
                finally:
                    store._writer.close()
        finally:
            await store._call(store._close)

    @property
    def failed_changes(self) -> int:
        return self._writer.failed_changes

    @failed_changes.setter
    def failed_changes(self, value: int) -> None:
        self._writer.failed_changes = value

    @property
    def deposed_writes(self) -> int:
        """Changes refused because this control plane no longer held the lease of `fencing`."""
        return self._writer.deposed_writes

    @property
    def unreadable_rows(self) -> int:
        return self.quarantine.count

    async def _call(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        if self._threaded:
            return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        await trio.lowlevel.checkpoint()
        return fn(*args)

    async def run_sync(self, fn: Callable[[Connection], T]) -> T:
        """Runs `fn` on a pooled connection (in autocommit mode) in a worker thread."""
        return await self._call(self._with_connection, fn)

    def _with_connection(self, fn: Callable[[Connection], T]) -> T:
        """Runs `fn` on a pooled connection; once more on another when the connection was lost
        (the server restarted, or a proxy closed it), since every write the store makes may be
        made twice: rows are upserted or inserted once by their keys."""
        if self._pool is None:
            raise StoreError(f"{self.location}: the store is closed")
        try:
            with self._pool.connection() as conn:
                try:
                    return fn(conn)
                except psycopg.OperationalError:
                    if not conn.broken:
                        raise
            # The pool drops the broken connection as it takes it back; its others may be gone
            # too, when the server restarted.
            log.warning("store=%s connection lost; trying again on another", self.location)
            self._pool.check()
            with self._pool.connection() as conn:
                return fn(conn)
        except psycopg_pool.PoolTimeout:
            raise StoreError(f"{self.location}: no connection to the database") from None

    def _connect(self) -> None:
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.Error as exc:
            problem = postgres_schema.one_line(exc)
            raise StoreError(f"{self.location}: cannot open the database: {problem}") from None
        with conn:
            postgres_schema.migrate(conn, self.location)
        pool = psycopg_pool.ConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=_POOL_SIZE,
            kwargs={"autocommit": True},
            configure=_configure,
            open=False,
            name="navarch-store",
            timeout=30,
        )
        try:
            pool.open(wait=True, timeout=_CONNECT_TIMEOUT)
        except psycopg_pool.PoolTimeout:
            pool.close()
            raise StoreError(f"{self.location}: cannot open a pool of connections") from None
        self._pool = pool

    def _close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def commit(self, change: Change) -> None:
        await self._writer.commit(change)

    def commit_soon(self, change: Change) -> None:
        self._writer.commit_soon(change)

    def note_heartbeat(self, node_id: str, at: datetime, metrics: NodeMetrics | None) -> None:
        self._writer.note_heartbeat(node_id, at, metrics)

    async def _write(
        self, changes: list[Change], heartbeats: Heartbeats, fencing: Fencing
    ) -> list[Exception | None]:
        return await self.run_sync(
            lambda conn: postgres_writer.write(conn, changes, heartbeats, fencing, self.location)
        )

    async def load(self, *, set_aside: bool = True) -> StoredState:
        """The state to start from; rows that do not read are set aside and logged first."""
        fencing = self.fencing
        try:
            state = await self._query(
                lambda conn: self._load(conn, fencing, set_aside), "cannot load the state"
            )
        except BaseException:
            self.quarantine.forget()
            raise
        self.quarantine.report()
        return state

    def _load(self, conn: Connection, fencing: Fencing, set_aside: bool) -> StoredState:
        read = self.quarantine.read
        # A second try, on another connection, starts over.
        self.quarantine.forget()
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            state = load_state(conn, read, sql, self._rows)
            if not set_aside:
                self.quarantine.forget()
            elif self.quarantine.pending:
                postgres_writer.check_fence(conn, fencing, self.location)
                self.quarantine.move_aside(conn)
        return state

    async def list_commands(self, *, node_id: str, limit: int, before: str) -> list[Command]:
        clause, params = ("AND command_id < %s ", (node_id, before)) if before else ("", (node_id,))
        query = (
            f"SELECT {sql.COMMAND_COLUMNS} FROM commands WHERE node_id = %s {clause}"
            "ORDER BY command_id DESC LIMIT %s"
        )
        found = await self._select(query, (*params, limit))
        return self.quarantine.skip(found, self._rows.command)

    async def remediation_switches(self) -> list[RemediationSwitch]:
        query = "SELECT kind, pool, reason, since FROM remediation_switches ORDER BY kind, pool"
        return self.quarantine.skip(await self._select(query, ()), self._rows.switch)

    async def list_remediations(self, *, pool: str, node_id: str, limit: int) -> list[Remediation]:
        where: list[str] = []
        params: list[object] = []
        if pool:
            where.append("pool = %s")
            params.append(pool)
        if node_id:
            where.append("node_id = %s")
            params.append(node_id)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        query = (
            f"SELECT {sql.REMEDIATION_COLUMNS} FROM remediations {clause}"
            "ORDER BY episode_id DESC LIMIT %s"
        )
        found = await self._select(query, (*params, limit))
        return self.quarantine.skip(found, self._rows.remediation)

    async def get_command(self, command_id: str) -> Command | None:
        query = f"SELECT {sql.COMMAND_COLUMNS} FROM commands WHERE command_id = %s"
        found = self.quarantine.skip(await self._select(query, (command_id,)), self._rows.command)
        return found[0] if found else None

    async def list_events(
        self, *, node_id: str, kinds: Sequence[str], limit: int, before: str
    ) -> list[Event]:
        where: list[str] = []
        params: list[object] = []
        if node_id:
            where.append("node_id = %s")
            params.append(node_id)
        if kinds:
            where.append("kind = ANY(%s)")
            params.append(list(kinds))
        if before:
            where.append("event_id < %s")
            params.append(before)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        query = f"SELECT {sql.EVENT_COLUMNS} FROM events {clause}ORDER BY event_id DESC LIMIT %s"
        found = await self._select(query, (*params, limit))
        return self.quarantine.skip(found, self._rows.event)

    async def _select(self, query: str, params: Sequence[object]) -> list[TupleRow]:
        return await self._query(
            lambda conn: conn.execute(query.encode(), params).fetchall(), "cannot read"
        )

    async def _query(self, fn: Callable[[Connection], T], failure: str) -> T:
        """`run_sync`, with a database's error as a StoreError that says what `failure` was."""
        try:
            return await self.run_sync(fn)
        except psycopg.Error as exc:
            problem = postgres_schema.one_line(exc)
            raise StoreError(f"{self.location}: {failure}: {problem}") from None

    async def prune_nodes(self, node_ids: Sequence[str], events_before: datetime) -> None:
        fencing, before, ids = self.fencing, format_timestamp(events_before), list(node_ids)

        def prune(conn: Connection) -> None:
            with conn.transaction():
                postgres_writer.check_fence(conn, fencing, self.location)
                for table in ("nodes", "node_tokens", "commands", "health_events"):
                    conn.execute(f"DELETE FROM {table} WHERE node_id = ANY(%s)".encode(), (ids,))
                conn.execute(
                    "DELETE FROM decision_state WHERE scope LIKE 'node.%%' AND key = ANY(%s)",
                    (ids,),
                )
                # Events of nodes gone from the store, once they are as old as the retention.
                conn.execute(
                    "DELETE FROM events WHERE time < %s AND node_id != '' "
                    "AND node_id NOT IN (SELECT node_id FROM nodes)",
                    (before,),
                )

        await self._query(prune, "pruning terminated nodes failed")

    async def ping(self) -> None:
        await self._select("SELECT MAX(version) FROM schema_version", ())


def _configure(conn: Connection) -> None:
    for setting in _SESSION:
        conn.execute(setting.encode())


def _conninfo(url: str, location: str) -> str:
    try:
        given = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        # libpq's reason may quote the password; the form is all a person needs.
        raise StoreError(
            f"{location}: not a PostgreSQL URL of libpq's form "
            "(postgresql://USER@HOST:PORT/DB?PARAMETER=VALUE)"
        ) from None
    return make_conninfo("", **{**_CONNECTION_DEFAULTS, **given})
