"""The lease row on a real PostgreSQL database: one holder at a time, a new token per term, and a
renewal of an old term refused."""

from __future__ import annotations

import psycopg
import pytest

from navarch.controlplane.leadership import Lease, LeaseError
from navarch.store.postgres_schema import migrate


@pytest.fixture
def schema(postgres_url: str) -> str:
    with psycopg.connect(postgres_url) as conn:
        migrate(conn, "test")
    return postgres_url


def _lease(url: str, holder: str) -> Lease:
    return Lease(url, holder=holder, address=f"http://{holder}:50051", ttl=3.0)


def _expire(url: str) -> None:
    """Moves the lease's expiry into the past, as if its holder stopped renewing long ago."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE leader_lease SET expires_at = now() - interval '1 second'")


async def test_one_control_plane_holds_the_lease_and_the_others_name_it(schema: str) -> None:
    a, b = _lease(schema, "a"), _lease(schema, "b")
    try:
        assert await a.acquire() == 1
        assert await b.acquire() is None
        assert await b.leader() == "http://a:50051"
        assert await a.renew(1)
        assert await b.acquire() is None
    finally:
        a.close()
        b.close()


async def test_a_takeover_after_expiry_starts_a_new_term_and_the_old_one_cannot_renew(
    schema: str,
) -> None:
    a, b = _lease(schema, "a"), _lease(schema, "b")
    try:
        assert await a.acquire() == 1
        _expire(schema)
        assert await b.leader() == ""
        assert await b.acquire() == 2
        assert not await a.renew(1)
        assert await a.acquire() is None
        assert await a.leader() == "http://b:50051"
    finally:
        a.close()
        b.close()


async def test_a_released_lease_is_taken_at_once_and_a_holder_that_returns_gets_a_new_term(
    schema: str,
) -> None:
    a, b = _lease(schema, "a"), _lease(schema, "b")
    try:
        assert await a.acquire() == 1
        await a.release(1)
        assert await b.acquire() == 2
        await b.release(2)
        assert await b.acquire() == 3
        assert not await b.renew(2)
    finally:
        a.close()
        b.close()


async def test_an_unreachable_database_is_a_lease_error_naming_it() -> None:
    lease = _lease("postgresql://postgres@127.0.0.1:1/navarch", "a")
    with pytest.raises(LeaseError, match="the lease's database did not answer"):
        await lease.acquire()
