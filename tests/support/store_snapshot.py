"""The rows of a SQLite store, read from outside the control plane, to show what a call changed."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


def snapshot(path: Path, *, ignore: tuple[str, ...] = ()) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, read through a connection of its own, less `ignore` columns."""
    conn = sqlite3.connect(path)
    try:
        tables = [
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        result = {}
        for table in tables:
            cursor = conn.execute(f"SELECT * FROM {table}")
            keep = [i for i, d in enumerate(cursor.description) if d[0] not in ignore]
            rows = [tuple(row[i] for i in keep) for row in cursor.fetchall()]
            result[table] = sorted(rows, key=repr)
        return result
    finally:
        conn.close()
