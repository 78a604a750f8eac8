"""Moving a fleet's state from a SQLite store into a PostgreSQL database (`navarch store migrate`).

Both stores keep the same format (`navarch.store.rows`), so every row is copied as it is, table by
table, in one transaction on PostgreSQL: the database ends up with all of it or none of it. The
SQLite store is opened first, which brings it to the newest schema and takes its owner lock, so a
control plane still running on it stops the move rather than writing behind it. A database that
already holds state is refused unless the caller asks to replace what it holds.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg
from attrs import frozen

from navarch.store.lock import StoreInUse
from navarch.store.postgres import PostgresStore
from navarch.store.postgres_schema import one_line
from navarch.store.postgres_writer import Connection
from navarch.store.protocol import StoreError
from navarch.store.sqlite import SQLiteStore

# The PostgreSQL store's own bookkeeping, never copied.
_NOT_COPIED = frozenset({"schema_version", "leader_lease"})


@frozen
class Imported:
    # The database, as shown to people.
    location: str
    # Rows copied, by table, in the order copied.
    rows: dict[str, int]


async def import_sqlite(source: str, target: str, *, replace: bool) -> Imported:
    """Copies every row of the SQLite store at `source` into the PostgreSQL database `target`."""
    if not Path(source).is_file():
        raise StoreError(f"{source}: no store there")
    try:
        async with SQLiteStore.open(source), PostgresStore.open(target) as store:
            copied = await store.run_sync(lambda conn: _copy(source, conn, store.location, replace))
            return Imported(store.location, copied)
    except StoreInUse as exc:
        holder = str(exc).partition(";")[0]
        raise StoreError(f"{holder}; stop it before moving its store") from None


def _copy(source: str, conn: Connection, location: str, replace: bool) -> dict[str, int]:
    """Streams the rows of every table of `source`, read in one SQLite read transaction so that
    the tables agree with each other, into one transaction on `conn`."""
    uri = f"{Path(source).resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, isolation_level=None)) as lite:
        lite.execute("BEGIN")
        tables = {
            name: [column for _, column, *_ in lite.execute(f"PRAGMA table_info({name})")]
            for (name,) in lite.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            ).fetchall()
            if name not in _NOT_COPIED
        }
        known = {
            name
            for (name,) in conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            ).fetchall()
        }
        missing = sorted(set(tables) - known)
        if missing:
            raise StoreError(f"{location}: has no table {', '.join(missing)} of the SQLite store")
        try:
            return _write(lite, conn, location, tables, replace)
        except psycopg.Error as exc:
            raise StoreError(
                f"{location}: the move failed, nothing was written: {one_line(exc)}"
            ) from None


def _write(
    lite: sqlite3.Connection,
    conn: Connection,
    location: str,
    tables: dict[str, list[str]],
    replace: bool,
) -> dict[str, int]:
    copied: dict[str, int] = {}
    with conn.transaction():
        # A large fleet's events take longer than one statement may take in the store.
        conn.execute("SET LOCAL statement_timeout = 0")
        held = [
            name
            for name in tables
            if conn.execute(f"SELECT EXISTS (SELECT 1 FROM {name})".encode()).fetchone() == (True,)
        ]
        if held and not replace:
            raise StoreError(
                f"{location}: already holds state (tables {', '.join(held)}); move into an "
                "empty database, or pass --replace to replace what it holds"
            )
        if held:
            conn.execute(f"TRUNCATE {', '.join(held)}".encode())
        for name, columns in tables.items():
            listed = ", ".join(columns)
            copied[name] = 0
            with conn.cursor().copy(f"COPY {name} ({listed}) FROM STDIN".encode()) as copy:
                for row in lite.execute(f"SELECT {listed} FROM {name}"):
                    copy.write_row(row)
                    copied[name] += 1
    return copied
