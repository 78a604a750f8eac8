"""Schema migrations: numbered files applied in order, recorded in `schema_version`.

A migration is `NNNN_name.sql` or, where rows must be rewritten in ways SQL cannot, a module
`NNNN_name.py` with `migrate(conn)`, under `navarch/store/migrations/`. Each runs in its own
transaction together with the row that records it, so a failed migration leaves the database at the
previous version. A database whose version is newer than the newest file was written by a newer
navarch, and opening it is refused rather than risking a write in a format this code does not know.
"""

from __future__ import annotations

import functools
import importlib
import re
import sqlite3
from collections.abc import Callable
from importlib import resources

from navarch.store.protocol import StoreError

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.(sql|py)$")
_PACKAGE = "navarch.store.migrations"

Migration = Callable[[sqlite3.Connection], None]


def migrations() -> list[tuple[int, str, Migration]]:
    """(version, file name, the function that applies it) of every migration, in order."""
    found = []
    for entry in resources.files(_PACKAGE).iterdir():
        match = _NAME.match(entry.name)
        if match is None:
            continue
        if match.group(2) == "sql":
            script = entry.read_text(encoding="utf-8")
            apply: Migration = functools.partial(_run_script, script=script)
        else:
            apply = importlib.import_module(f"{_PACKAGE}.{entry.name[:-3]}").migrate
        found.append((int(match.group(1)), entry.name, apply))
    found.sort(key=lambda m: m[0])
    return found


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # One statement at a time: executescript would commit the migration's transaction.
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""


def latest_version() -> int:
    return migrations()[-1][0]


def migrate(conn: sqlite3.Connection, location: str) -> int:
    """Brings the database up to the newest schema; returns the version it ends at."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    current = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
    known = migrations()
    newest = known[-1][0]
    if current > newest:
        raise StoreError(
            f"{location}: the database has schema version {current}, newer than this navarch "
            f"knows ({newest}); upgrade navarch, or point it at another data directory"
        )
    for version, name, apply in known:
        if version <= current:
            continue
        try:
            conn.execute("BEGIN IMMEDIATE")
            apply(conn)
            conn.execute(
                "INSERT INTO schema_version (version, name, applied_at) "
                "VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
                (version, name),
            )
            conn.execute("COMMIT")
        except (sqlite3.Error, ValueError, KeyError, TypeError) as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"{location}: migration {name} failed: {exc}") from None
        current = version
    return current
