"""A control plane that sheds load answers 503 `unavailable` with `Retry-After`: the client raises
`Overloaded` with the hint, and the daemon waits at least the hint (and at most twice it), does not
register again, and carries on; hostile hints are bounded or ignored. Real HTTP on loopback, on
trio's MockClock."""

from __future__ import annotations

import itertools
import random
import statistics

import pytest
import trio
import trio.testing
from support.fake_plane import FakePlane

from navarch.api import wire as m
from navarch.api.client import (
    MAX_RETRY_AFTER,
    MIN_RETRY_AFTER,
    HttpClient,
    Overloaded,
    retry_after,
)
from navarch.api.codec import ApiError
from navarch.daemon.agent import Daemon
from navarch.daemon.backoff import Backoff
from navarch.daemon.config import DaemonConfig
from navarch.daemon.gpu import SimulatedGpus
from navarch.daemon.host import FixedHostStats


@pytest.fixture
def clock() -> trio.testing.MockClock:
    # Loopback replies come within moments of real time; the clock jumps once nothing has run
    # for a little while.
    return trio.testing.MockClock(autojump_threshold=0.02)


def _refusal(value: str) -> tuple[int, list[tuple[str, str]]]:
    return 503, [("Retry-After", value)]


def _daemon(client: HttpClient, node_id: str = "gpu-1", seed: int = 1) -> Daemon:
    return Daemon(
        client,
        SimulatedGpus(2, seed=node_id),
        DaemonConfig(node_id=node_id),
        host_stats=FixedHostStats(10.0, 20.0),
        rng=random.Random(seed),
        join_token="join",
    )


async def _run_until(plane: FakePlane, client: HttpClient, until: float, **kwargs: object) -> None:
    daemon = _daemon(client, **kwargs)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(daemon.run)
        await trio.sleep_until(until)
        daemon.stop()


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 12 ", 12.0),
        ("0", MIN_RETRY_AFTER),
        ("86400", MAX_RETRY_AFTER),
        ("9" * 5000, MAX_RETRY_AFTER),
        ("-5", None),
        ("1.5", None),
        ("1e9", None),
        ("", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
        ("3, 4", None),
        ("\u0663", None),  # ARABIC-INDIC DIGIT THREE: int() takes it, HTTP does not
        ("\u00b2", None),  # SUPERSCRIPT TWO: isdigit() says yes
        (None, None),
    ],
)
def test_retry_after_takes_delta_seconds_within_bounds(header: str | None, seconds: float) -> None:
    assert retry_after(header) == seconds


async def test_a_shed_call_raises_overloaded_with_the_hint(clock: trio.testing.MockClock) -> None:
    plane = FakePlane(refuse={"ListNodes": [_refusal("7"), _refusal("soon"), _refusal("-1")]})
    async with trio.open_nursery() as nursery:
        await nursery.start(plane.run)
        async with HttpClient(plane.url) as client:
            with pytest.raises(Overloaded) as shed:
                await client.list_nodes(m.ListNodesRequest())
            assert (shed.value.code, shed.value.retry_after) == ("unavailable", 7.0)
            # Without a usable hint it is a plain `unavailable`, retried with the usual backoff.
            for _ in range(2):
                with pytest.raises(ApiError) as plain:
                    await client.list_nodes(m.ListNodesRequest())
                assert plain.value.code == "unavailable"
                assert not isinstance(plain.value, Overloaded)
            await client.list_nodes(m.ListNodesRequest())
        nursery.cancel_scope.cancel()


async def test_a_follower_naming_the_leader_is_followed_even_with_a_hint(
    clock: trio.testing.MockClock,
) -> None:
    leader = FakePlane()
    async with trio.open_nursery() as nursery:
        await nursery.start(leader.run)
        follower = FakePlane(
            refuse={"ListNodes": [(503, [("navarch-leader", leader.url), ("Retry-After", "9")])]}
        )
        await nursery.start(follower.run)
        async with HttpClient(follower.url) as client:
            await client.list_nodes(m.ListNodesRequest())
            assert client.url == leader.url
        nursery.cancel_scope.cancel()


async def test_a_refused_heartbeat_waits_for_the_hint_and_does_not_register_again(
    clock: trio.testing.MockClock,
) -> None:
    plane = FakePlane(refuse={"SendHeartbeat": [_refusal("7"), _refusal("7")]})
    async with trio.open_nursery() as nursery:
        await nursery.start(plane.run)
        async with HttpClient(plane.url) as client:
            await _run_until(plane, client, trio.current_time() + 60)
        nursery.cancel_scope.cancel()
    assert plane.methods().count("RegisterNode") == 1
    beats = plane.times("SendHeartbeat")
    # Two refusals: each wait is the hint plus jitter of up to the hint again.
    for gap in (beats[1] - beats[0], beats[2] - beats[1]):
        assert 7.0 <= gap <= 14.0
    # Then heartbeats resume at the interval the control plane gave (10 s).
    assert len(beats) >= 5
    assert [round(b - a, 3) for a, b in itertools.pairwise(beats[2:])] == [10.0] * (len(beats) - 3)


async def test_a_refused_long_poll_waits_for_the_hint(clock: trio.testing.MockClock) -> None:
    plane = FakePlane(refuse={"GetNodeCommands": [_refusal("15")]})
    async with trio.open_nursery() as nursery:
        await nursery.start(plane.run)
        async with HttpClient(plane.url) as client:
            await _run_until(plane, client, trio.current_time() + 30)
        nursery.cancel_scope.cancel()
    polls = plane.times("GetNodeCommands")
    assert 15.0 <= polls[1] - polls[0] <= 30.0
    assert plane.methods().count("RegisterNode") == 1


async def test_a_refused_registration_is_retried_after_the_hint(
    clock: trio.testing.MockClock,
) -> None:
    plane = FakePlane(refuse={"RegisterNode": [_refusal("5"), _refusal("20")]})
    async with trio.open_nursery() as nursery:
        await nursery.start(plane.run)
        async with HttpClient(plane.url) as client:
            await _run_until(plane, client, trio.current_time() + 60)
        nursery.cancel_scope.cancel()
    registrations = plane.times("RegisterNode")
    assert len(registrations) == 3
    assert 5.0 <= registrations[1] - registrations[0] <= 10.0
    assert 20.0 <= registrations[2] - registrations[1] <= 40.0
    assert plane.times("SendHeartbeat")[0] >= registrations[2]


async def test_hostile_hints_neither_crash_the_daemon_nor_silence_it(
    clock: trio.testing.MockClock,
) -> None:
    hostile = ["-3", "9" * 5000, "\u0663", "NaN", "1e308"]
    plane = FakePlane(refuse={"SendHeartbeat": [_refusal(h) for h in hostile]})
    async with trio.open_nursery() as nursery:
        await nursery.start(plane.run)
        async with HttpClient(plane.url) as client:
            await _run_until(plane, client, trio.current_time() + 300)
        nursery.cancel_scope.cancel()
    beats = plane.times("SendHeartbeat")
    gaps = [b - a for a, b in itertools.pairwise(beats)]
    # The huge hint is bounded (at most twice MAX_RETRY_AFTER); the others are no hint at all
    # and get the usual backoff, capped at the heartbeat interval.
    assert max(gaps) <= 2 * MAX_RETRY_AFTER
    assert gaps[1] >= MAX_RETRY_AFTER
    assert len(beats) > len(hostile) + 3
    assert plane.methods().count("RegisterNode") == 1


def test_the_waits_after_a_hint_spread_a_fleet_over_the_hint_again() -> None:
    hint = 10.0
    waits = [Backoff(rng=random.Random(seed)).honour(hint) for seed in range(2000)]
    assert all(hint <= w <= 2 * hint for w in waits)
    # Spread evenly: every tenth of the second interval holds about a tenth of the fleet.
    tenths = [0] * 10
    for w in waits:
        tenths[min(int(w - hint), 9)] += 1
    assert min(tenths) > 120
    assert abs(statistics.mean(waits) - 1.5 * hint) < 0.3


def test_reconnection_after_a_restart_is_spread_by_full_jitter() -> None:
    # The backoff of a node whose calls failed for a while: its waits fill (0, cap), so a fleet
    # that lost the control plane at once does not come back at once.
    waits = []
    for seed in range(2000):
        backoff = Backoff(cap=30.0, rng=random.Random(seed))
        for _ in range(6):
            backoff.next_delay()
        waits.append(backoff.next_delay())
    assert all(0 <= w <= 30.0 for w in waits)
    sixths = [0] * 6
    for w in waits:
        sixths[min(int(w / 5), 5)] += 1
    assert min(sixths) > 250


async def test_a_fleet_refused_in_one_instant_comes_back_spread_out(
    clock: trio.testing.MockClock,
) -> None:
    nodes = 12
    plane = FakePlane(refuse={"RegisterNode": [_refusal("10") for _ in range(nodes)]})
    async with trio.open_nursery() as nursery:
        await nursery.start(plane.run)
        # One client each, as each machine has: a long poll holds a connection.
        clients = [HttpClient(plane.url) for _ in range(nodes)]
        start = trio.current_time()
        async with trio.open_nursery() as fleet:
            daemons = [_daemon(c, f"gpu-{i}", seed=i) for i, c in enumerate(clients)]
            for daemon in daemons:
                fleet.start_soon(daemon.run)
            await trio.sleep_until(start + 25)
            for daemon in daemons:
                daemon.stop()
        for client in clients:
            await client.aclose()
        nursery.cancel_scope.cancel()
    registrations = plane.times("RegisterNode")
    first, again = registrations[:nodes], registrations[nodes:]
    assert len(again) == nodes
    assert max(first) - min(first) < 1.0
    assert all(10.0 <= t - start <= 21.0 for t in again)
    # Twelve draws from a 10-second interval: far apart, not in one burst.
    assert max(again) - min(again) > 4.0
