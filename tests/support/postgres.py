"""Fresh PostgreSQL databases for tests, on the server at 127.0.0.1:5432 (or
NAVARCH_TEST_POSTGRES), trust auth. A test that needs one skips when no server answers, and
fails instead when NAVARCH_REQUIRE_POSTGRES=1 (CI)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

ADMIN_URL = os.environ.get("NAVARCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("NAVARCH_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"no PostgreSQL server at {ADMIN_URL}: {str(exc).strip().splitlines()[0]}")


@contextmanager
def fresh_database(prefix: str = "navarch_test") -> Iterator[str]:
    """The URL of a new, empty database, dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with _admin() as admin:
        admin.execute(f"CREATE DATABASE {name}".encode())
    try:
        yield f"{ADMIN_URL.rpartition('/')[0]}/{name}"
    finally:
        with _admin() as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())
