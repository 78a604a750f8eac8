"""Scale to zero and from zero: the queue alone wakes a pool of no nodes, and its last node
leaves only after the pool has been idle for the idle timeout."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio
import trio.testing
from support.api import rpc
from support.pool_config import autoscaler, pool_config, state
from support.pool_manager import (
    ADMIN,
    events,
    fleet,
    healthy_nodes,
    live_nodes,
    open_fleet,
    pool,
    wait_until,
)

from navarch.api import wire as m
from navarch.config import parse_config
from navarch.errors import ConfigError
from navarch.pools.behavior import Decision
from navarch.pools.pool import PoolState
from navarch.pools.scale_to_zero import hold_last_node

QUEUE_POOL = """
[providers.fake]
type = "fake"
provision_delay = "20s"
utilization = 0

[pools.dev]
instance_type = "h100-8x"
min_nodes = 0
max_nodes = 6
scale_interval = "10s"

[[pools.dev.providers]]
provider = "fake"

[pools.dev.autoscaler]
type = "queue"
jobs_per_node = 4

[pools.dev.scaling.scale_down]
idle_timeout = "30m"
"""

MINUTE = 60.0


def fake(service):
    return service.pools.providers["fake"]


async def report(service, depth: int) -> None:
    await rpc(service, m.ReportQueueDepthRequest(pool="dev", depth=depth), ADMIN)


async def test_a_queue_wakes_a_pool_of_no_nodes_and_the_last_node_waits_for_the_idle_timeout(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_fleet(tmp_path / "navarch.db", fleet(QUEUE_POOL)) as service:
        await trio.sleep(10 * MINUTE)
        assert live_nodes(service) == []
        await report(service, 7)
        started = trio.current_time()
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        # Provisioned in the first round after the report, booted 20 s later.
        assert trio.current_time() - started <= 40
        await report(service, 0)
        emptied = trio.current_time()
        # One node leaves as the scale-down rules allow; the last one stays 30 minutes.
        await wait_until(lambda: len(live_nodes(service)) == 1)
        assert trio.current_time() - emptied < 30 * MINUTE
        view = await pool(service)
        assert "the last node leaves once the pool has been idle for 30m" in view.last_decision
        await wait_until(lambda: live_nodes(service) == [])
        assert trio.current_time() - emptied >= 30 * MINUTE
        assert trio.current_time() - emptied <= 32 * MINUTE
        scaled = [
            (e.details["previous"], e.details["target"])
            for e in await events(service, "pool.scaled")
        ]
        assert sorted(scaled) == [("0", "2"), ("1", "0"), ("2", "1")]


async def test_the_last_node_stays_while_its_gpus_work(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_fleet(tmp_path / "navarch.db", fleet(QUEUE_POOL)) as service:
        fake(service).set_load(60)
        await report(service, 1)
        await wait_until(lambda: len(healthy_nodes(service)) == 1)
        await report(service, 0)
        await trio.sleep(3 * 60 * MINUTE)
        assert len(live_nodes(service)) == 1
        view = await pool(service)
        assert view.target == 1
        assert "the last node stays while 1 node uses its GPUs" in view.last_decision
        fake(service).set_load(0)
        idle = trio.current_time()
        await wait_until(lambda: live_nodes(service) == [])
        assert trio.current_time() - idle >= 30 * MINUTE


async def test_a_job_during_the_countdown_starts_it_again(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_fleet(tmp_path / "navarch.db", fleet(QUEUE_POOL)) as service:
        await report(service, 1)
        await wait_until(lambda: len(healthy_nodes(service)) == 1)
        await report(service, 0)
        await trio.sleep(20 * MINUTE)
        await report(service, 2)
        await trio.sleep(MINUTE)
        assert len(live_nodes(service)) == 1
        assert service.pools.pools["dev"].idle_since is None
        await report(service, 0)
        emptied = trio.current_time()
        await trio.sleep(29 * MINUTE)
        assert len(live_nodes(service)) == 1
        await wait_until(lambda: live_nodes(service) == [])
        assert trio.current_time() - emptied >= 30 * MINUTE
        # Woken again from zero by the next job.
        await report(service, 3)
        await wait_until(lambda: len(healthy_nodes(service)) == 1)


async def test_without_an_idle_timeout_the_last_node_leaves_like_any_other(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    config = fleet(QUEUE_POOL.replace('idle_timeout = "30m"', 'window = "0s"'))
    async with open_fleet(tmp_path / "navarch.db", config) as service:
        fake(service).set_load(60)
        await report(service, 1)
        await wait_until(lambda: len(healthy_nodes(service)) == 1)
        await report(service, 0)
        emptied = trio.current_time()
        await wait_until(lambda: live_nodes(service) == [])
        # Only the delay after a scale-up held it.
        assert trio.current_time() - emptied <= 12 * MINUTE


COMPOSITE_POOL = """
[providers.fake]
type = "fake"
utilization = 0

[pools.dev]
instance_type = "h100-8x"
min_nodes = 0
max_nodes = 6
scale_interval = "10s"

[[pools.dev.providers]]
provider = "fake"

[pools.dev.autoscaler]
type = "composite"
mode = "min"

[[pools.dev.autoscaler.members]]
type = "reactive"

[[pools.dev.autoscaler.members]]
type = "queue"
jobs_per_node = 2

[pools.dev.scaling.scale_down]
idle_timeout = "15m"
"""


async def test_a_composite_pool_wakes_from_zero_and_goes_back_to_it(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_fleet(tmp_path / "navarch.db", fleet(COMPOSITE_POOL)) as service:
        await report(service, 5)
        await wait_until(lambda: len(healthy_nodes(service)) == 3)
        await report(service, 0)
        emptied = trio.current_time()
        await wait_until(lambda: live_nodes(service) == [])
        assert trio.current_time() - emptied >= 15 * MINUTE


def test_the_queue_autoscaler_needs_no_nodes(plugins):
    queue = autoscaler(plugins, '[pools.p.autoscaler]\ntype = "queue"\njobs_per_node = 4\n')
    assert queue.recommend(state(current_nodes=0, queue_depth=9)).target == 3
    assert queue.recommend(state(current_nodes=1, queue_depth=0)).target == 0
    unknown = queue.recommend(state(current_nodes=0, queue_depth=None))
    assert (unknown.target, unknown.reason) == (0, "no queue depth reported")


@pytest.mark.parametrize("mode", ["min", "average"])
def test_a_composite_of_no_nodes_takes_its_highest_member(plugins, mode):
    composite = autoscaler(
        plugins,
        f"""
        [pools.p.autoscaler]
        type = "composite"
        mode = "{mode}"
        [[pools.p.autoscaler.members]]
        type = "reactive"
        [[pools.p.autoscaler.members]]
        type = "queue"
        jobs_per_node = 2
        """,
    )
    woken = composite.recommend(state(current_nodes=0, queue_depth=7))
    assert woken.target == 4
    assert woken.reason.startswith(f"max (no nodes, so not the {mode}) of [")
    # With nodes, the mode holds again: reactive holds 2 nodes at 50 %, the queue asks for 4.
    busy = composite.recommend(state(current_nodes=2, utilization=50.0, queue_depth=7))
    assert busy.target == (2 if mode == "min" else 3)
    assert busy.reason.startswith(f"{mode} of [")


def test_idle_timeout_is_read_and_checked(plugins):
    table = '[pools.p.scaling.scale_down]\nidle_timeout = "{}"\n'
    config = pool_config(plugins, table.format("10m"))
    assert config.scaling.scale_down.idle_timeout.total_seconds() == 600
    assert pool_config(plugins).scaling.scale_down.idle_timeout.total_seconds() == 0
    with pytest.raises(ConfigError, match=r"pools\.p\.scaling\.scale_down\.idle_timeout"):
        pool_config(plugins, table.format("soon"))
    with pytest.raises(ConfigError, match=r"pools\.p\.scaling\.scale_down\.idle_timeout"):
        parse_config(
            '[providers.fake]\n[pools.p]\ninstance_type = "h100-8x"\n'
            '[[pools.p.providers]]\nprovider = "fake"\n'
            "[pools.p.scaling.scale_down]\nidle_timeout = -5\n",
            "navarch.toml",
            plugins,
        )


def test_why_the_last_node_stays(plugins):
    config = pool_config(plugins, '[pools.p.scaling.scale_down]\nidle_timeout = "5m"\n')
    dev = PoolState("p", config)

    def decide(previous: int, now: float) -> Decision:
        down = Decision(
            pool="p", previous=previous, recommended=0, target=0, reasons=("r",), at=now
        )
        return hold_last_node(dev, down, [], now)

    # A depth pushed once is a queue: not knowing it now is not an empty queue.
    dev.queue_depth_at = datetime(2025, 1, 1, tzinfo=UTC)
    assert (
        decide(1, 0.0).reasons[-1]
        == "held at 1: the last node stays while the queue depth is not known"
    )
    dev.queue_depth = 3
    assert (
        decide(2, 0.0).reasons[-1]
        == "limited to 1: the last node stays while the queue holds 3 jobs"
    )
    dev.queue_depth = 0
    held = decide(2, 10.0)
    assert held.target == 1
    assert (
        held.reasons[-1]
        == "limited to 1: the last node leaves once the pool has been idle for 5m (5m left)"
    )
    assert decide(1, 250.0).reasons[-1].endswith("(1m left)")
    assert decide(1, 310.0).target == 0
    # A pool of no nodes has no last node to keep.
    assert decide(0, 0.0).target == 0
