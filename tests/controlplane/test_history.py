"""The fleet's and the pools' history, sampled by the control plane every 15 s on its own clock,
and the pools' scaling decisions, read through the API's call path in virtual time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trio
import trio.testing
from support.api import rpc
from support.pool_manager import REACTIVE, SERVER, fleet, healthy_nodes, wait_until

from navarch.api import wire as m
from navarch.clock import Clock
from navarch.config import Config
from navarch.controlplane import ControlPlane
from navarch.controlplane.history import INTERVAL, POINTS
from navarch.daemon.local import LocalMachines
from navarch.store import SQLiteStore

START = datetime(2026, 3, 1, tzinfo=UTC)


@asynccontextmanager
async def _service(path: Path, config: Config | None = None) -> AsyncIterator[ControlPlane]:
    """A control plane whose wall clock follows trio's virtual time from START."""
    clock = Clock(lambda: START + timedelta(seconds=trio.current_time()))
    async with (
        SQLiteStore.open(path, threaded=False) as store,
        ControlPlane.open(
            store, SERVER, clock=clock, config=config, machines=LocalMachines
        ) as service,
    ):
        yield service


async def _summary(
    service: ControlPlane, after: datetime | None = None
) -> m.GetFleetSummaryResponse:
    response: m.GetFleetSummaryResponse = await rpc(
        service, m.GetFleetSummaryRequest(history_after=after)
    )
    return response


async def test_the_fleet_is_sampled_every_15_s_and_six_hours_are_kept(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with _service(tmp_path / "navarch.db") as service:
        start = trio.current_time()
        await rpc(
            service, m.RegisterNodeRequest(node_id="n1", gpus=(m.GpuInfo(index=0, uuid="G"),))
        )
        await trio.sleep(INTERVAL * 3 + 1)
        history = (await _summary(service)).history
        assert [p.time for p in history] == [
            START + timedelta(seconds=start + INTERVAL * i) for i in range(4)
        ]
        # The first point was taken as the control plane started, before n1 registered.
        assert history[0].statuses == m.StatusCounts()
        assert history[1].statuses == m.StatusCounts(active=1)
        assert history[1].healths == m.HealthCounts(unknown=1)
        assert history[1].gpus_total == 1
        # Only the points after a time.
        after = await _summary(service, history[1].time)
        assert after.history == history[2:]
        await trio.sleep(7 * 3600)
        history = (await _summary(service)).history
        assert len(history) == POINTS == 1440
        assert history[-1].time - history[0].time == timedelta(seconds=INTERVAL * (POINTS - 1))
        # n1 went silent long ago: unhealthy, its health unknown.
        assert history[-1].statuses == m.StatusCounts(unhealthy=1)


async def test_a_pool_keeps_its_size_over_time_and_its_decisions_with_their_reasons(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with _service(tmp_path / "navarch.db", fleet(REACTIVE)) as service:
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        await trio.sleep(60)
        pool = (await rpc(service, m.GetPoolRequest(name="dev"))).pool
        first, last = pool.history[0], pool.history[-1]
        assert (first.min_nodes, first.max_nodes) == (2, 5)
        # At start nothing is there yet; a minute after the nodes came up, both count.
        assert (first.size, first.time) == (0, START)
        assert (last.size, last.target, last.in_flight) == (2, 2, 0)
        assert any(p.in_flight == 2 for p in pool.history)
        assert [p.time - START for p in pool.history] == [
            timedelta(seconds=INTERVAL * i) for i in range(len(pool.history))
        ]
        # Newest first; the oldest raised the pool to min_nodes, and each later one has a new
        # kind of reason.
        started, *_, decision = reversed(pool.decisions)
        assert (started.previous, started.target, started.recommended) == (0, 2, 0)
        assert started.reason.endswith("raised to min_nodes 2")
        assert (started.time, started.autoscaler) == (START, "reactive")
        assert (decision.previous, decision.target) == (2, 2)
        assert decision.reason == pool.last_decision == "utilization 50.0% is within 20-80% → 2"
        recorded = await rpc(service, m.ListEventsRequest(kinds=("pool.scaled", "pool.decision")))
        assert [e.reason for e in recorded.events] == [d.reason for d in pool.decisions]
        service.pool_manager().providers["fake"].set_load(95)
        await wait_until(lambda: len(healthy_nodes(service)) == 3)
        pool = (await rpc(service, m.GetPoolRequest(name="dev"))).pool
        grown = pool.decisions[pool.decisions.index(decision) - 1]
        assert grown.previous == 2 < grown.target
        assert "above 80%" in grown.reason
        assert grown.time > decision.time
        recorded = await rpc(service, m.ListEventsRequest(kinds=("pool.scaled", "pool.decision")))
        assert [e.reason for e in recorded.events] == [d.reason for d in pool.decisions]
        # ListPools leaves the history and decisions to GetPool.
        (listed,) = (await rpc(service, m.ListPoolsRequest())).pools
        assert (listed.history, listed.decisions) == ((), ())
        # The summary's pools are as the latest history point has them.
        summary = await _summary(service)
        latest = (await rpc(service, m.GetPoolRequest(name="dev"))).pool.history[-1]
        assert summary.pools == (
            m.PoolBrief(
                name="dev",
                size=latest.size,
                min_nodes=2,
                max_nodes=5,
                target=latest.target,
                in_flight=latest.in_flight,
            ),
        )
        assert summary.time - latest.time < timedelta(seconds=INTERVAL)
