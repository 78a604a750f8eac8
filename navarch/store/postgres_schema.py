"""PostgreSQL schema migrations: numbered `.sql` files applied in order, recorded in
`schema_version`, as the SQLite store's are (`navarch.store.schema`).

The files live in `navarch/store/migrations_pg/` and are numbered on their own. Each runs in one
transaction with the row that records it, under a transaction-level advisory lock, so that control
planes starting together on a new database apply each migration once. A database whose version is
newer than the newest file was written by a newer navarch, and opening it is refused.
"""

from __future__ import annotations

import re
from importlib import resources

import psycopg

from navarch.store.protocol import StoreError

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_PACKAGE = "navarch.store.migrations_pg"
# pg_advisory_xact_lock key held while migrating: "navarch" in ASCII.
_LOCK_KEY = 0x6E617661726368


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL script) of every migration, in order."""
    found = []
    for entry in resources.files(_PACKAGE).iterdir():
        match = _NAME.match(entry.name)
        if match is not None:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m[0])
    return found


def latest_version() -> int:
    return migrations()[-1][0]


def migrate(conn: psycopg.Connection[tuple[object, ...]], location: str) -> int:
    """Brings the database up to the newest schema; returns the version it ends at.

    `conn` is in autocommit mode; each migration is a transaction of its own.
    """
    known = migrations()
    newest = known[-1][0]
    current = 0
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
    except psycopg.Error as exc:
        raise StoreError(f"{location}: cannot prepare the schema: {one_line(exc)}") from None
    for version, name, script in known:
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                found = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
                current = int(str(found[0] or 0)) if found else 0
                if current > newest:
                    raise StoreError(
                        f"{location}: the database has schema version {current}, newer than "
                        f"this navarch knows ({newest}); upgrade navarch, or point it at another "
                        "database"
                    )
                if version <= current:
                    continue
                conn.execute(script.encode())
                conn.execute(
                    "INSERT INTO schema_version (version, name, applied_at) "
                    "VALUES (%s, %s, to_char(now() AT TIME ZONE 'UTC', "
                    '\'YYYY-MM-DD"T"HH24:MI:SS"Z"\'))',
                    (version, name),
                )
        except psycopg.Error as exc:
            raise StoreError(f"{location}: migration {name} failed: {one_line(exc)}") from None
        current = max(current, version)
    return current


def one_line(exc: BaseException) -> str:
    """psycopg's messages span lines (a detail, a hint); a store error is one line."""
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
