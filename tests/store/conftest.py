"""`store_factory`: each store test that takes it runs on SQLite and on PostgreSQL.

SQLite gets a file in the test's temporary directory; PostgreSQL a fresh database on the local
server (`support.postgres`), dropped after the test. Tests of what only SQLite has (its file, its
owner lock, its release files) open `SQLiteStore` themselves and say so in their docstring.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.postgres import fresh_database
from support.store_backends import StoreBackend


@pytest.fixture(params=["sqlite", "postgresql"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreBackend]:
    if request.param == "sqlite":
        yield StoreBackend("sqlite", str(tmp_path / "navarch.db"))
        return
    with fresh_database() as url:
        yield StoreBackend("postgresql", url)
