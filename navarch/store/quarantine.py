"""Rows that do not read back, set aside so that the control plane still starts.

A row in a form the store cannot read (left by an older navarch, a hand edit or a bug) would
otherwise stop every start with "unreadable stored value". At load, each such row is moved to the
table `quarantine`, with the table it came from, its key, the problem and its columns as JSON; it
is logged once and counted, and the rest of the state loads. A node whose soft columns alone do
not read (its last metrics and last health report) keeps its place, without them: the next
heartbeat and report bring new ones, and the old ones are recorded in `quarantine` all the same.
Rows read later on demand (events, commands, episodes) that do not read are skipped, logged and
counted, and stay where they are.

To look at what was set aside: `sqlite3 navarch.db 'SELECT * FROM quarantine'`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterable
from typing import TypeVar

from attrs import frozen

from navarch.clock import format_timestamp, utc_now
from navarch.store.protocol import StoreError
from navarch.store.rows import Row

T = TypeVar("T")

log = logging.getLogger("navarch.store")

_INSERT = (
    "INSERT INTO quarantine (quarantined_at, source, row_key, problem, body, kept) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


@frozen
class Salvage:
    """How a row stays when only some of its columns do not read: those columns reset."""

    # The row with the columns reset, to read again.
    row: Callable[[Row], Row]
    # The UPDATE that resets them in the table, with the rowid as its one parameter.
    sql: str


@frozen
class SetAside:
    table: str
    rowid: int
    key: str
    problem: str
    row: Row
    salvage: Salvage | None


class Collector:
    """What the quarantines of both backends share: the rows of a load that do not read, collected
    to set aside, rows read on demand that are left out, and the log and count of both."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.count = 0
        self._pending: list[SetAside] = []

    def collect(
        self,
        fetched: Iterable[Row],
        table: str,
        read: Callable[[Row], T],
        salvage: Salvage | None,
    ) -> list[T]:
        """Reads `fetched` rows, each with its `rowid` first; collects those that fail."""
        out = []
        for rowid, *row in fetched:
            try:
                out.append(read(row))
                continue
            except StoreError as exc:
                problem = str(exc).encode("utf-8", "backslashreplace").decode()
            kept = None
            if salvage is not None:
                try:
                    out.append(read(salvage.row(row)))
                    kept = salvage
                except StoreError:
                    pass
            self._pending.append(SetAside(table, rowid, repr(row[0]), problem, row, kept))
        return out

    def skip(self, rows: Iterable[Row], read: Callable[[Row], T]) -> list[T]:
        """Reads rows on demand; a row that does not read is left out, logged and counted."""
        out = []
        for row in rows:
            try:
                out.append(read(row))
            except StoreError as exc:
                self.count += 1
                log.error("store=%s unreadable row left out: %s", self.location, exc)
        return out

    def forget(self) -> None:
        """Drops the rows collected to set aside: the load did not commit, or may not write."""
        self._pending = []

    def _report(self, pending: Iterable[SetAside]) -> None:
        for row in pending:
            self.count += 1
            outcome = "kept without its unreadable columns" if row.salvage else "moved aside"
            log.error(
                "store=%s unreadable row in %s %s, %s (see the table quarantine): %s",
                self.location,
                row.table,
                row.key,
                outcome,
                row.problem,
            )


class Quarantine(Collector):
    """Collects the rows of a load that do not read, then moves them aside in one transaction."""

    def read(
        self,
        conn: sqlite3.Connection,
        table: str,
        sql: str,
        params: Iterable[object],
        read: Callable[[Row], T],
        salvage: Salvage | None = None,
    ) -> list[T]:
        """Reads the rows of `sql`, which selects `rowid` first; sets aside those that fail."""
        return self.collect(conn.execute(sql, tuple(params)), table, read, salvage)

    def move_aside(self, conn: sqlite3.Connection) -> None:
        """Moves (or, when salvaged, records and repairs) the rows `read` set aside."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        now = format_timestamp(utc_now())
        conn.execute("BEGIN IMMEDIATE")
        try:
            for row in pending:
                body = json.dumps(list(row.row), default=repr)
                kept = row.salvage is not None
                conn.execute(_INSERT, (now, row.table, row.key, row.problem, body, int(kept)))
                if row.salvage is not None:
                    conn.execute(row.salvage.sql, (row.rowid,))
                else:
                    conn.execute(f"DELETE FROM {row.table} WHERE rowid = ?", (row.rowid,))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise StoreError(f"{self.location}: cannot set unreadable rows aside: {exc}") from None
        self._report(pending)
