"""The embedded store: one SQLite file in WAL mode, written by one task with group commit.

Every change goes through a trio memory channel to a single writer task, which drains whatever has
queued up and writes it in one transaction: under load, many requests share one commit (measured
30 times faster than a commit each). SQLite itself runs in a worker thread, one call at a time.

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
from navarch.model import LIVE, Command, Event, NodeMetrics, Remediation
from navarch.store import rows, schema
from navarch.store.lock import StoreLock
from navarch.store.protocol import Change, RemediationSwitch, StoredState, StoreError
from navarch.store.quarantine import Quarantine, Salvage

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

log = logging.getLogger("navarch.store")

# A batch this large is written even if more changes are waiting, to bound one transaction.
_MAX_BATCH = 2000

_NODE_COLUMNS = (
    "node_id, status, health, status_reason, provider, region, zone, instance_type, pool, "
    "hostname, labels, gpus, registered_at, last_heartbeat_at, metrics, last_health_events"
)
_COMMAND_COLUMNS = (
    "command_id, node_id, type, status, reason, parameters, issued_at, issued_by, "
    "completed_at, result_message"
)
_INSTANCE_COLUMNS = (
    "instance_id, provider, pool, region, zone, instance_type, status, reason, node_id, "
    "created_at, updated_at, address, bootstrap, preflight"
)
_EVENT_COLUMNS = "event_id, time, kind, node_id, actor, reason, from_status, to_status, details"


def _upsert(table: str, columns: str, key: str) -> str:
    names = [c.strip() for c in columns.split(",")]
    updates = ", ".join(f"{c} = excluded.{c}" for c in names if c != key)
    marks = ", ".join("?" for _ in names)
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({marks}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )


_UPSERT_NODE = _upsert("nodes", _NODE_COLUMNS, "node_id")
_UPSERT_INSTANCE = (
    f"INSERT INTO instances ({_INSTANCE_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (provider, instance_id) DO UPDATE SET status = excluded.status, "
    "reason = excluded.reason, node_id = excluded.node_id, updated_at = excluded.updated_at, "
    "address = excluded.address, bootstrap = excluded.bootstrap, "
    "preflight = excluded.preflight"
)
_UPSERT_COMMAND = _upsert("commands", _COMMAND_COLUMNS, "command_id")
_INSERT_EVENT = (
    f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (event_id) DO NOTHING"
)
_INSERT_HEALTH_EVENT = (
    "INSERT INTO health_events (report_id, seq, node_id, time, type, gpu_index, xid, body) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (report_id, seq) DO NOTHING"
)
_UPSERT_TOKEN = (
    "INSERT INTO node_tokens (node_id, token_hash, issued_at) VALUES (?, ?, ?) "
    "ON CONFLICT (node_id) DO UPDATE SET token_hash = excluded.token_hash, "
    "issued_at = excluded.issued_at"
)
_UPDATE_HEARTBEAT = (
    "UPDATE nodes SET last_heartbeat_at = ?, metrics = COALESCE(?, metrics) WHERE node_id = ?"
)

_OPEN_STATUSES = ("pending", "delivered")

_REMEDIATION_COLUMNS = (
    "episode_id, node_id, pool, step, rule, detail, started_at, updated_at, action, gpu_index"
)
_UPSERT_REMEDIATION = _upsert("remediations", f"{_REMEDIATION_COLUMNS}, open", "episode_id")
_UPSERT_SWITCH = (
    "INSERT INTO remediation_switches (kind, pool, reason, since) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (kind, pool) DO UPDATE SET reason = excluded.reason, since = excluded.since"
)
_DELETE_SWITCH = "DELETE FROM remediation_switches WHERE kind = ? AND pool = ?"

# A node whose last metrics or last health report do not read keeps its place without them.
_NODE_SALVAGE = Salvage(
    row=lambda row: (*row[:14], None, "[]"),
    sql="UPDATE nodes SET metrics = NULL, last_health_events = '[]' WHERE rowid = ?",
)


class _Outcome:
    """How the write of a change ended, for the caller that waits for it."""

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: StoreError | None = None


# A queued change, and its outcome when a caller waits for it.
_Queued = tuple[Change, _Outcome | None]

# node id -> (time of its last heartbeat, its metrics as the store's JSON text), until the flush.
# Text rather than objects: the collector would otherwise walk a second's worth of every node's
# metrics objects, promoted to its oldest generation by a busy server before they are written.
Heartbeats = dict[str, tuple[str, str | None]]


class SQLiteStore:
    """A `Store` on one SQLite file. Open it with `async with SQLiteStore.open(path)`."""

    def __init__(self, path: str, *, threaded: bool, flush_interval: float) -> None:
        self.location = path
        self._threaded = threaded
        self._flush_interval = flush_interval
        self._limiter = trio.CapacityLimiter(1)
        self._conn: sqlite3.Connection | None = None
        self._rows = rows.RowReader(path)
        self._send, self._receive = trio.open_memory_channel[_Queued](10_000)
        self._heartbeats: Heartbeats = {}
        self.quarantine = Quarantine(path)
        self.failed_changes = 0

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
                nursery.start_soon(store._write_loop)
                try:
                    yield store
                finally:
                    store._send.close()
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

    async def commit(self, change: Change) -> None:
        outcome = _Outcome()
        await self._send.send((change, outcome))
        await outcome.done.wait()
        if outcome.error is not None:
            raise outcome.error

    def commit_soon(self, change: Change) -> None:
        try:
            self._send.send_nowait((change, None))
        except trio.WouldBlock:
            # The writer is far behind; dropping state that may be lost is the cheaper choice.
            pass

    def note_heartbeat(self, node_id: str, at: datetime, metrics: NodeMetrics | None) -> None:
        text = None if metrics is None else rows.to_json(metrics)
        if text is None and node_id in self._heartbeats:
            text = self._heartbeats[node_id][1]
        self._heartbeats[node_id] = (format_timestamp(at), text)

    async def _write_loop(self) -> None:
        next_flush = trio.current_time() + self._flush_interval
        try:
            while True:
                batch: list[_Queued] = []
                with trio.move_on_at(next_flush):
                    try:
                        batch.append(await self._receive.receive())
                    except trio.EndOfChannel:
                        break
                self._take_queued(batch)
                heartbeats: Heartbeats = {}
                if trio.current_time() >= next_flush:
                    heartbeats, self._heartbeats = self._heartbeats, {}
                    next_flush = trio.current_time() + self._flush_interval
                if batch or heartbeats:
                    await self._write_batch(batch, heartbeats)
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                await self._write_everything_left()
            raise
        await self._write_everything_left()

    def _take_queued(self, batch: list[_Queued]) -> None:
        while len(batch) < _MAX_BATCH:
            try:
                batch.append(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                return

    async def _write_everything_left(self) -> None:
        while True:
            batch: list[_Queued] = []
            self._take_queued(batch)
            heartbeats, self._heartbeats = self._heartbeats, {}
            if not batch and not heartbeats:
                return
            await self._write_batch(batch, heartbeats)

    async def _write_batch(
        self,
        batch: list[_Queued],
        heartbeats: Heartbeats,
    ) -> None:
        changes = [change for change, _ in batch]
        try:
            errors = await self._run(self._write, changes, heartbeats)
        except Exception as exc:
            log.error("store=%s write failed: %r", self.location, exc)
            errors = [exc] * len(changes)
        for (_, outcome), error in zip(batch, errors, strict=True):
            if error is not None:
                self.failed_changes += 1
                # repr, because the problem may hold the very text that could not be encoded.
                log.error("store=%s change not written: %r", self.location, error)
            if outcome is not None:
                if error is not None:
                    outcome.error = StoreError(f"{self.location}: write failed: {error!r}")
                outcome.done.set()

    def _write(self, changes: list[Change], heartbeats: Heartbeats) -> list[Exception | None]:
        """Writes the changes and heartbeats in one transaction; returns each change's error."""
        conn = self._db()
        try:
            with _transaction(conn):
                for change in changes:
                    self._apply(conn, change)
                conn.executemany(_UPDATE_HEARTBEAT, _heartbeat_rows(heartbeats))
            return [None] * len(changes)
        except Exception:
            pass
        # One change may be at fault: each goes in a savepoint of its own, in one commit still.
        errors: list[Exception | None] = []
        with _transaction(conn):
            for change in changes:
                errors.append(_in_savepoint(conn, self._apply, conn, change))
            for row in _heartbeat_rows(heartbeats):
                error = _in_savepoint(conn, conn.execute, _UPDATE_HEARTBEAT, row)
                if error is not None:
                    log.error("store=%s heartbeat not written: %r", self.location, error)
        return errors

    @staticmethod
    def _apply(conn: sqlite3.Connection, change: Change) -> None:
        if change.nodes:
            conn.executemany(_UPSERT_NODE, [rows.node_row(n) for n in change.nodes])
        if change.commands:
            conn.executemany(_UPSERT_COMMAND, [rows.command_row(c) for c in change.commands])
        if change.events:
            conn.executemany(_INSERT_EVENT, [rows.event_row(e) for e in change.events])
        for report in change.health_reports:
            conn.executemany(
                _INSERT_HEALTH_EVENT,
                [
                    (
                        report.report_id,
                        seq,
                        report.node_id,
                        rows.time(event.time),
                        event.type.value,
                        event.gpu_index,
                        event.xid,
                        rows.to_json(event),
                    )
                    for seq, event in enumerate(report.events)
                ],
            )
        if change.instances:
            conn.executemany(_UPSERT_INSTANCE, [rows.instance_row(r) for r in change.instances])
        if change.remediations:
            conn.executemany(
                _UPSERT_REMEDIATION, [rows.remediation_row(r) for r in change.remediations]
            )
        for switch in change.remediation_switches:
            if switch.on:
                conn.execute(
                    _UPSERT_SWITCH,
                    (switch.kind, switch.pool, switch.reason, rows.time(switch.since)),
                )
            else:
                conn.execute(_DELETE_SWITCH, (switch.kind, switch.pool))
        if change.node_tokens:
            conn.executemany(
                _UPSERT_TOKEN,
                [(t.node_id, t.token_hash, rows.time(t.issued_at)) for t in change.node_tokens],
            )

    async def load(self) -> StoredState:
        """The state to start from; rows that do not read are set aside and logged first."""
        return await self._run(self._load)

    def _load(self) -> StoredState:
        conn = self._db()
        read = self.quarantine.read
        nodes = read(
            conn,
            "nodes",
            f"SELECT rowid, {_NODE_COLUMNS} FROM nodes ORDER BY node_id",
            (),
            self._rows.node,
            _NODE_SALVAGE,
        )
        commands = read(
            conn,
            "commands",
            f"SELECT rowid, {_COMMAND_COLUMNS} FROM commands WHERE status IN (?, ?) "
            "ORDER BY command_id",
            _OPEN_STATUSES,
            self._rows.command,
        )
        tokens = dict(conn.execute("SELECT node_id, token_hash FROM node_tokens").fetchall())
        live = sorted(status.value for status in LIVE)
        instances = read(
            conn,
            "instances",
            f"SELECT rowid, {_INSTANCE_COLUMNS} FROM instances "
            f"WHERE status IN ({', '.join('?' for _ in live)}) ORDER BY provider, instance_id",
            live,
            self._rows.instance,
        )
        remediations = read(
            conn,
            "remediations",
            f"SELECT rowid, {_REMEDIATION_COLUMNS} FROM remediations WHERE open = 1 "
            "ORDER BY episode_id",
            (),
            self._rows.remediation,
        )
        switches = read(
            conn,
            "remediation_switches",
            "SELECT rowid, kind, pool, reason, since FROM remediation_switches ORDER BY kind, pool",
            (),
            self._switch,
        )
        self.quarantine.move_aside(conn)
        return StoredState(
            nodes=tuple(nodes),
            open_commands=tuple(commands),
            node_tokens=tokens,
            instances=tuple(instances),
            open_remediations=tuple(remediations),
            remediation_switches=tuple(switches),
        )

    def _switch(self, row: rows.Row) -> RemediationSwitch:
        kind, pool, reason, since = row
        return RemediationSwitch(
            kind=kind, pool=pool, reason=reason, since=self._rows.instant(since, "switches")
        )

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
            f"SELECT {_REMEDIATION_COLUMNS} FROM remediations {clause}"
            "ORDER BY episode_id DESC LIMIT ?",
            (*params, limit),
        )
        return self.quarantine.skip(rows, self._rows.remediation)

    async def get_command(self, command_id: str) -> Command | None:
        return await self._run(self._get_command, command_id)

    def _get_command(self, command_id: str) -> Command | None:
        row = (
            self._db()
            .execute(f"SELECT {_COMMAND_COLUMNS} FROM commands WHERE command_id = ?", (command_id,))
            .fetchone()
        )
        found = [] if row is None else self.quarantine.skip([row], self._rows.command)
        return found[0] if found else None

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
            f"SELECT {_EVENT_COLUMNS} FROM events {clause}ORDER BY event_id DESC LIMIT ?",
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
