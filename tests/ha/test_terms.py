"""Terms of leadership on trio's mock clock, with the lease row kept in memory: a leader cut off
from the database stops before another control plane may start, a leader whose renewal is refused
stops at once, and a term the store refuses ends and is given up."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import cast

import attrs
import pytest
import trio
import trio.testing

from navarch.controlplane import ControlPlane
from navarch.controlplane.leadership import Leadership, Lease, LeaseError
from navarch.store import StoreError

TTL = 3.0


@attrs.define
class Row:
    holder: str = ""
    token: int = 0
    expires_at: float = -1.0
    # Holders whose calls never arrive.
    cut: set[str] = attrs.field(factory=set)


class MemoryLease(Lease):
    """The lease SQL's rules, on the mock clock: `now` is the database's clock."""

    def __init__(self, row: Row, holder: str) -> None:
        super().__init__("postgresql://unused", holder=holder, address=f"http://{holder}", ttl=TTL)
        self.row = row

    async def _arrive(self) -> float:
        if self.holder in self.row.cut:
            await trio.sleep_forever()
        return trio.current_time()

    async def acquire(self) -> int | None:
        now = await self._arrive()
        row = self.row
        if row.expires_at < now or row.holder == self.holder:
            row.holder, row.token, row.expires_at = self.holder, row.token + 1, now + TTL
            return row.token
        return None

    async def renew(self, token: int) -> bool:
        now = await self._arrive()
        row = self.row
        if (row.holder, row.token) != (self.holder, token):
            return False
        row.expires_at = now + TTL
        return True

    async def release(self, token: int) -> None:
        await self._arrive()
        if (self.row.holder, self.row.token) == (self.holder, token):
            self.row.expires_at = -1.0

    async def leader(self) -> str:
        now = await self._arrive()
        return f"http://{self.row.holder}" if self.row.expires_at >= now else ""


class FencedStore:
    fencing: tuple[str, int] | None = None


@attrs.define
class Terms:
    """When each control plane's terms ran, on the mock clock."""

    spans: list[tuple[str, float, float]] = attrs.field(factory=list)
    fail_in: dict[str, StoreError] = attrs.field(factory=dict)

    def opener(self, name: str) -> object:
        @asynccontextmanager
        async def open_term() -> AsyncIterator[ControlPlane]:
            started = trio.current_time()
            try:
                async with trio.open_nursery() as nursery:
                    failure = self.fail_in.pop(name, None)
                    if failure is not None:

                        async def fail() -> None:
                            await trio.sleep(0)
                            raise failure

                        nursery.start_soon(fail)
                    yield cast(ControlPlane, object())
            finally:
                self.spans.append((name, started, trio.current_time()))

        return open_term


def _leadership(row: Row, terms: Terms, name: str, store: FencedStore) -> Leadership:
    async def no_snapshot() -> ControlPlane:
        raise AssertionError("not read in these tests")

    def load() -> Awaitable[ControlPlane]:
        return no_snapshot()

    return Leadership(
        MemoryLease(row, name),
        store,
        open_term=terms.opener(name),  # type: ignore[arg-type]
        load_snapshot=load,
    )


async def _until(predicate: object) -> None:
    while not predicate():  # type: ignore[operator]
        await trio.sleep(0.05)


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_a_leader_cut_off_from_the_database_stops_before_another_starts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    row, terms = Row(), Terms()
    store_a, store_b = FencedStore(), FencedStore()
    a = _leadership(row, terms, "a", store_a)
    b = _leadership(row, terms, "b", store_b)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await _until(lambda: a.role() == "leader")
        await nursery.start(b.run)
        await _until(lambda: b.role() == "follower of http://a")
        assert store_a.fencing == ("control-plane", 1)
        await trio.sleep(10 * TTL)  # renewals keep the lease with one term
        assert (a.role(), b.role(), a.terms) == ("leader", "follower of http://a", 1)

        row.cut.add("a")
        lease_expired_at = row.expires_at
        await _until(lambda: b.role() == "leader")
        assert a.role() == "follower"
        assert store_b.fencing == ("control-plane", 2)
        # a's fencing token stays that of its old term, so the store refuses its late writes.
        assert store_a.fencing == ("control-plane", 1)
        nursery.cancel_scope.cancel()

    (a_name, _, a_stopped), (b_name, b_started, _) = terms.spans
    assert (a_name, b_name) == ("a", "b")
    assert a_stopped < lease_expired_at <= b_started


async def test_a_leader_whose_renewal_is_refused_stops_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    row, terms = Row(), Terms()
    a = _leadership(row, terms, "a", FencedStore())
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await _until(lambda: a.role() == "leader")
        row.holder, row.token = "someone-else", row.token + 1
        took_over_at = trio.current_time()
        await _until(lambda: a.role() != "leader")
        assert trio.current_time() - took_over_at == pytest.approx(a.renew_every)
        nursery.cancel_scope.cancel()
    assert len(terms.spans) == 1


async def test_a_term_the_store_refuses_ends_gives_up_the_lease_and_a_later_term_follows(
    autojump_clock: trio.testing.MockClock,
) -> None:
    row, terms = Row(), Terms(fail_in={"a": StoreError("this control plane no longer leads")})
    a = _leadership(row, terms, "a", FencedStore())
    started: list[ControlPlane] = []
    a.on_term.append(started.append)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await _until(lambda: a.terms == 2 and a.role() == "leader")
        nursery.cancel_scope.cancel()
    assert [name for name, _, _ in terms.spans] == ["a", "a"]
    # The refused term was not followed by another before the next round.
    (_, _, refused_at), (_, second_at, _) = terms.spans
    assert second_at - refused_at == pytest.approx(a.renew_every)
    assert len(started) == 2 and started[0] is not started[1]
    # Shutting down released the lease, so a follower need not wait for it to expire.
    assert row.expires_at == -1.0


async def test_a_follower_that_cannot_reach_the_database_names_no_leader(
    autojump_clock: trio.testing.MockClock,
) -> None:
    row, terms = Row(holder="a", token=1, expires_at=1e9), Terms()

    class Down(MemoryLease):
        async def acquire(self) -> int | None:
            raise LeaseError("the lease's database did not answer: connection refused")

    b = Leadership(
        Down(row, "b"),
        FencedStore(),
        open_term=terms.opener("b"),  # type: ignore[arg-type]
        load_snapshot=lambda: trio.sleep_forever(),  # type: ignore[arg-type,return-value]
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(b.run)
        await trio.sleep(TTL)
        assert b.role() == "follower"
        nursery.cancel_scope.cancel()
    assert terms.spans == []
