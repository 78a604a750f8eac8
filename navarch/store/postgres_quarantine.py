"""Rows of a PostgreSQL store that do not read back, set aside as the SQLite store sets them aside
(`navarch.store.quarantine`, which explains why): into the table `quarantine`, by the `rowid`
column each domain table has for this alone.

To look at what was set aside: `psql URL -c 'SELECT * FROM quarantine'`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TypeVar

import psycopg
from psycopg.rows import TupleRow

from navarch.clock import format_timestamp, utc_now
from navarch.store.quarantine import Collector, Salvage
from navarch.store.rows import Row

T = TypeVar("T")

_INSERT = (
    "INSERT INTO quarantine (quarantined_at, source, row_key, problem, body, kept) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)


class PgQuarantine(Collector):
    """Collects the rows of a load that do not read, moves them aside within the load's
    transaction, and reports them once it has committed."""

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def read(
        self,
        conn: psycopg.Connection[TupleRow],
        table: str,
        sql: str,
        params: Sequence[object],
        read: Callable[[Row], T],
        salvage: Salvage | None = None,
    ) -> list[T]:
        """Reads the rows of `sql`, which selects `rowid` first; sets aside those that fail."""
        return self.collect(conn.execute(sql.encode(), params).fetchall(), table, read, salvage)

    def move_aside(self, conn: psycopg.Connection[TupleRow]) -> None:
        """Moves (or, when salvaged, records and repairs) the rows `read` set aside, in the
        caller's transaction; `report` tells of them once it has committed."""
        now = format_timestamp(utc_now())
        with conn.cursor() as cur:
            for row in self._pending:
                body = json.dumps(list(row.row), default=repr)
                kept = int(row.salvage is not None)
                cur.execute(_INSERT, (now, row.table, row.key, row.problem, body, kept))
                if row.salvage is not None:
                    cur.execute(row.salvage.sql.encode(), (row.rowid,))
                else:
                    cur.execute(f"DELETE FROM {row.table} WHERE rowid = %s".encode(), (row.rowid,))

    def report(self) -> None:
        pending, self._pending = self._pending, []
        self._report(pending)
