"""Schema migrations: numbered SQL files applied in order, recorded in `schema_version`.

A migration file is `NNNN_name.sql` under `navarch/store/migrations/`; each runs in its own
transaction together with the row that records it, so a failed migration leaves the database at the
previous version. A database whose version is newer than the newest file was written by a newer
navarch, and opening it is refused rather than risking a write in a format this code does not know.
"""

from __future__ import annotations

import re
import sqlite3
from importlib import resources

from navarch.store.protocol import StoreError

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every migration, in order."""
    found = []
    for entry in resources.files("navarch.store").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    return found


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
    for version, name, sql in known:
        if version <= current:
            continue
        record = (
            "INSERT INTO schema_version (version, name, applied_at) "
            f"VALUES ({version}, '{name}', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));"
        )
        try:
            conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\n{record}\nCOMMIT;")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"{location}: migration {name} failed: {exc}") from None
        current = version
    return current
