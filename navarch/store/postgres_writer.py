"""How the PostgreSQL store writes a batch: one transaction, soft heartbeats and fencing.

The batch comes from the group commit both stores share (`navarch.store.group_commit`), and is
written in one transaction on a pooled connection in a worker thread, its heartbeats all in one
statement. A change that cannot be written fails its own callers alone: a failed batch is written
again with each change in a savepoint of its own.

Fencing: when the store's `fencing` names a lease and its token, each write transaction first
reads the lease row `FOR SHARE`. A different token means another control plane took the lease,
and the whole transaction is refused with `Deposed`. The share lock also holds off the new
leader's update of that row until the write in flight has committed, so a write is either before
the takeover or refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

import psycopg
from psycopg.rows import TupleRow

from navarch.store import postgres_sql as sql
from navarch.store.group_commit import Fencing, Heartbeats
from navarch.store.protocol import Change, Deposed
from navarch.store.writes import writes

log = logging.getLogger("navarch.store")

Connection = psycopg.Connection[TupleRow]


def check_fence(conn: Connection, fencing: Fencing, location: str) -> None:
    """Raises Deposed unless the lease `fencing` names still has its token; call it first in a
    write transaction."""
    if fencing is None:
        return
    name, token = fencing
    row = conn.execute(sql.FENCE, (name,)).fetchone()
    if row is None or row[0] != token:
        now = "no holder" if row is None else f"token {row[0]}"
        raise Deposed(
            f"{location}: this control plane no longer leads (lease {name}: token {token}, "
            f"now {now}); its write was refused"
        )


def write(
    conn: Connection, changes: list[Change], heartbeats: Heartbeats, fencing: Fencing, location: str
) -> list[Exception | None]:
    """Writes the changes and heartbeats in one transaction; returns each change's error."""
    try:
        with conn.transaction():
            check_fence(conn, fencing, location)
            for change in changes:
                apply(conn, change)
            _write_heartbeats(conn, heartbeats)
        return [None] * len(changes)
    except Deposed:
        raise
    except Exception:
        pass
    # One change may be at fault: each goes in a savepoint of its own, in one commit still.
    errors: list[Exception | None] = []
    with conn.transaction():
        check_fence(conn, fencing, location)
        for change in changes:
            errors.append(_in_savepoint(conn, partial(apply, conn, change)))
        for node_id, (at, metrics) in sorted(heartbeats.items()):
            row = (at, metrics, node_id)
            error = _in_savepoint(conn, partial(conn.execute, sql.UPDATE_HEARTBEAT, row))
            if error is not None:
                log.error("store=%s heartbeat not written: %r", location, error)
    return errors


def _write_heartbeats(conn: Connection, heartbeats: Heartbeats) -> None:
    if not heartbeats:
        return
    ordered = sorted(heartbeats.items())
    conn.execute(
        sql.UPDATE_HEARTBEATS,
        (
            [node_id for node_id, _ in ordered],
            [at for _, (at, _) in ordered],
            [metrics for _, (_, metrics) in ordered],
        ),
    )


def _in_savepoint(conn: Connection, fn: Callable[[], object]) -> Exception | None:
    """Runs `fn` in a savepoint; on any error undoes what it wrote and returns the error."""
    try:
        with conn.transaction():
            fn()
    except Exception as exc:
        return exc
    return None


def apply(conn: Connection, change: Change) -> None:
    with conn.cursor() as cur:
        for statement, params in writes(change, sql):
            cur.executemany(statement, params)
