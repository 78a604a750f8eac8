"""A database that store tests open stores on, whichever backend it is, with a side door to it
for the test's own SQL (tests/store/conftest.py's `store_factory` makes them)."""

from __future__ import annotations

import sqlite3
from contextlib import AbstractAsyncContextManager, closing
from typing import Any

import psycopg
from attrs import frozen

from navarch.store import Store, open_store, postgres_schema, schema


@frozen
class StoreBackend:
    # "sqlite" or "postgresql".
    name: str
    # What `open_store` takes: a SQLite path or a PostgreSQL URL.
    target: str

    def open(self, **options: Any) -> AbstractAsyncContextManager[Store]:
        return open_store(self.target, **options)

    @property
    def latest_version(self) -> int:
        if self.name == "sqlite":
            return schema.latest_version()
        return postgres_schema.latest_version()

    def execute(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Runs one statement (with `?` marks) in a transaction of its own; returns its rows."""
        if self.name == "sqlite":
            with closing(sqlite3.connect(self.target)) as conn, conn:
                return conn.execute(sql, params).fetchall()
        with psycopg.connect(self.target) as pg:
            cursor = pg.execute(sql.replace("?", "%s").encode(), params)
            return cursor.fetchall() if cursor.description else []
