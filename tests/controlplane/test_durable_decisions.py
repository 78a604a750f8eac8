"""A restart changes no decision: the same inputs, fed to a control plane that restarts midway and
to one that does not, give the same verdicts, breaker states, scaling targets and episodes.

Each run has a wall clock that follows trio's clock from T0. A restart moves trio's clock on by
an hour without the wall clock, as a new process starts trio's clock over: a control plane that
kept trio times would find every window an hour off.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import trio
import trio.testing
from support.api import rpc
from support.remediation import (
    HELD,
    SERVER,
    T0,
    PoolManagerStandIn,
    episodes,
    open_plane,
    report,
    xid,
)
from support.service import ADMIN, register

from navarch.api import wire as m
from navarch.clock import Clock
from navarch.config import PoolHealthConfig, ServerConfig, parse_config
from navarch.controlplane import ControlPlane
from navarch.plugins.manager import load_plugins
from navarch.store import Change, SQLiteStore, Store

# What trio's clock moves on by at a restart, while the wall clock stands still.
JUMP = 3600.0

Step = Callable[[ControlPlane], Awaitable[object]]
Opener = Callable[[Path, Clock], AbstractAsyncContextManager[ControlPlane]]


class Wall:
    """A run's wall clock: T0 when the run starts, then as trio's clock moves, less the jumps."""

    def __init__(self, clock: trio.testing.MockClock) -> None:
        self._clock = clock
        self._base = trio.current_time()

    def __call__(self) -> datetime:
        return T0 + timedelta(seconds=trio.current_time() - self._base)

    def restart(self) -> None:
        self._clock.jump(JUMP)
        self._base += JUMP


async def play(
    path: Path,
    opener: Opener,
    steps: Sequence[Step],
    clock: trio.testing.MockClock,
    restart_after: Sequence[int] = (),
) -> list[object]:
    """What each step returned, with the control plane restarted after the steps named."""
    wall = Wall(clock)
    results: list[object] = []
    done = 0
    while done < len(steps):
        async with opener(path, Clock(wall)) as service:
            while done < len(steps):
                results.append(await steps[done](service))
                done += 1
                if done - 1 in restart_after:
                    break
        wall.restart()
    return results


async def same_with_and_without_restarts(
    tmp_path: Path,
    opener: Opener,
    steps: Sequence[Step],
    clock: trio.testing.MockClock,
    restart_after: Sequence[int],
) -> list[object]:
    straight = await play(tmp_path / "straight.db", opener, steps, clock)
    restarted = await play(tmp_path / "restarted.db", opener, steps, clock, restart_after)
    assert restarted == straight, (restarted, straight)
    return restarted


def plane(pools: dict[str, PoolHealthConfig] | None = None) -> Opener:
    def opener(path: Path, clock: Clock) -> AbstractAsyncContextManager[ControlPlane]:
        return open_plane(path, PoolManagerStandIn(), pools, clock=clock)

    return opener


def app_error(pid: str) -> m.HealthEvent:
    return xid(43, pid=pid)


async def health(service: ControlPlane, node_id: str, *events: m.HealthEvent) -> tuple[str, str]:
    reply = await report(service, node_id, *events)
    return reply.status.name, reply.health.name


async def test_the_judge_counts_and_ages_events_across_a_restart(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async def start(service: ControlPlane) -> object:
        await register(service, "a", pool="train")
        await register(service, "b", pool="train")
        return [await health(service, "a", app_error("1")), await health(service, "b", xid(43))]

    async def second_process(service: ControlPlane) -> object:
        await trio.sleep(60)
        return await health(service, "a", app_error("2"))

    async def third_process(service: ControlPlane) -> object:
        await trio.sleep(60)
        return await health(service, "a", app_error("3"))

    async def window_passes(service: ControlPlane) -> object:
        # 10 minutes and a second after b's one bad event: its window has passed.
        await trio.sleep(481)
        return await health(service, "b")

    results = await same_with_and_without_restarts(
        tmp_path,
        plane(),
        [start, second_process, third_process, window_passes],
        autojump_clock,
        restart_after=[1, 2],
    )
    assert results == [
        [("NODE_STATUS_ACTIVE", "HEALTH_STATUS_DEGRADED")] * 2,
        ("NODE_STATUS_ACTIVE", "HEALTH_STATUS_DEGRADED"),
        # The third process of the same XID within the hour: the history came through, and the
        # policy's drain is under way.
        ("NODE_STATUS_DRAINING", "HEALTH_STATUS_UNHEALTHY"),
        # No stale verdict kept for a window after the restart.
        ("NODE_STATUS_ACTIVE", "HEALTH_STATUS_HEALTHY"),
    ]


async def test_the_breaker_window_outlives_a_restart(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # Four nodes; more than half of them entering remediation within 5 minutes opens the breaker.
    pools = {"train": PoolHealthConfig(breaker_percent=50, breaker_window=timedelta(minutes=5))}

    def lost(node_id: str) -> Step:
        async def step(service: ControlPlane) -> object:
            await trio.sleep(30)
            await report(service, node_id, xid(79))
            [episode] = await episodes(service, node_id=node_id)
            return episode.step.name, sorted(service.remediation.switches.open_breakers)

        return step

    async def start(service: ControlPlane) -> object:
        for i in range(4):
            await register(service, f"n{i}", pool="train")
        return None

    results = await same_with_and_without_restarts(
        tmp_path,
        plane(pools),
        [start, lost("n0"), lost("n1"), lost("n2")],
        autojump_clock,
        restart_after=[2],
    )
    assert [r[1] for r in results[1:]] == [[], [], ["train"]]  # type: ignore[index]
    assert results[3] == (HELD.name, ["train"])


@pytest.mark.parametrize(
    ("code", "rule", "action", "gpu"),
    [
        (79, "xid-replace", m.RemediationAction.REMEDIATION_ACTION_REPLACE, -1),
        (46, "xid-reset-gpu", m.RemediationAction.REMEDIATION_ACTION_RESET_GPU, 2),
    ],
)
async def test_an_episode_whose_commit_a_crash_stopped_opens_after_the_restart(
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
    code: int,
    rule: str,
    action: m.RemediationAction,
    gpu: int,
) -> None:
    path = tmp_path / "db"
    wall = Wall(autojump_clock)
    async with SQLiteStore.open(path, threaded=False) as sqlite:
        store = StopsAtTheEpisode(sqlite)
        async with ControlPlane.open(
            store, SERVER, clock=Clock(wall), pool_health=TRAIN
        ) as service:
            await register(service, "a", pool="train")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(report, service, "a", xid(code, gpu=2))
                with trio.fail_after(60):
                    await store.stopped.wait()
                # The process dies here: the node's UNHEALTHY commit is written, the episode's
                # is not.
                nursery.cancel_scope.cancel()
            assert await episodes(service) == []
    wall.restart()
    async with open_plane(path, PoolManagerStandIn(), TRAIN, clock=Clock(wall)) as service:
        [episode] = await episodes(service)
        assert (episode.node_id, episode.rule, episode.action, episode.gpu_index) == (
            "a",
            rule,
            action,
            gpu,
        )
        # A repeated report of the same fault opens nothing more.
        await report(service, "a", xid(code, gpu=2))
        assert len(await episodes(service)) == 1
    async with open_plane(path, PoolManagerStandIn(), TRAIN, clock=Clock(wall)) as service:
        assert len(await episodes(service)) == 1


async def test_a_silent_node_whose_episode_a_crash_stopped_gets_it_after_the_restart(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "db"
    wall = Wall(autojump_clock)
    fast = ServerConfig(heartbeat_interval=timedelta(seconds=5))
    async with SQLiteStore.open(path, threaded=False) as sqlite:
        store = StopsAtTheEpisode(sqlite)
        async with ControlPlane.open(
            store, fast, clock=Clock(wall), pool_health=TRAIN, replacer=PoolManagerStandIn()
        ) as service:
            await register(service, "a", pool="train")
            with trio.fail_after(60):
                await store.stopped.wait()
            assert service.node_status("a").name == "UNHEALTHY"  # type: ignore[union-attr]
    wall.restart()
    async with SQLiteStore.open(path, threaded=False) as sqlite:
        async with ControlPlane.open(
            sqlite, fast, clock=Clock(wall), pool_health=TRAIN, replacer=PoolManagerStandIn()
        ) as service:
            [episode] = await episodes(service)
            assert (episode.node_id, episode.rule) == ("a", "heartbeat-lost")
        # The episode's commit took the intent away with it: a second restart opens no other.
        scopes = [d.scope for d in (await sqlite.load()).decisions]
        assert scopes == ["pool.breaker"]


TRAIN = {"train": PoolHealthConfig()}


class StopsAtTheEpisode:
    """A store that writes everything until the first episode, then never returns: a crash."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.stopped = trio.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def commit(self, change: Change) -> None:
        if change.remediations:
            self.stopped.set()
            await trio.sleep_forever()
        await self._inner.commit(change)


# A pool of four nodes that register as daemons would, sized by its queue; a scale-down waits
# for the highest recommendation of 5 minutes and removes at most one node per 10 minutes.
POOLS = """
[providers.fake]
type = "fake"

[pools.dev]
instance_type = "h100-8x"
min_nodes = 0
max_nodes = 10
scale_interval = "1h"

[[pools.dev.providers]]
provider = "fake"

[pools.dev.autoscaler]
type = "queue"
jobs_per_node = 1

[pools.dev.scaling.scale_down]
window = "5m"
delay_after_scale_up = "0s"
nodes = 1
percent = 0
period = "10m"
"""


def pools_plane(text: str) -> Opener:
    config = parse_config(text, plugins=load_plugins(entry_points=False))

    @asynccontextmanager
    async def opener(path: Path, clock: Clock) -> AsyncIterator[ControlPlane]:
        async with (
            SQLiteStore.open(path, threaded=False) as store,
            ControlPlane.open(store, SERVER, config=config, clock=clock) as service,
        ):
            yield service

    return opener


def round_at(depth: int, after: float) -> Step:
    """A step: `after` seconds later the queue holds `depth` jobs, and the pool decides."""

    async def step(service: ControlPlane) -> object:
        await trio.sleep(after)
        manager = service.pool_manager()
        manager.report_queue_depth("dev", depth)
        decision = await manager.run_round("dev")
        return decision.previous, decision.target, manager.pools["dev"].manual_target

    return step


async def test_scaling_windows_and_the_floor_outlive_restarts(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async def start(service: ControlPlane) -> object:
        for i in range(4):
            await register(service, f"d{i}", pool="dev")
        return await round_at(4, 0)(service)

    async def floor(service: ControlPlane) -> object:
        await rpc(service, m.ScalePoolRequest(name="dev", target=2), ADMIN)
        return None

    steps = [
        start,
        # The queue empties to one job: the scale-down window holds the pool at 4.
        round_at(1, 60),
        round_at(1, 60),
        # 5 minutes after the last recommendation of 4: one node may go per 10 minutes.
        round_at(1, 200),
        round_at(1, 60),
        floor,
        # 11 minutes after the first node went, the next may go, down to the floor of 2.
        round_at(0, 600),
        round_at(0, 60),
    ]
    results = await same_with_and_without_restarts(
        tmp_path, pools_plane(POOLS), steps, autojump_clock, restart_after=[1, 3, 5]
    )
    assert results == [
        (4, 4, None),
        (4, 4, None),
        (4, 4, None),
        (4, 3, None),
        (3, 3, None),
        None,
        (3, 2, 2),
        (2, 2, 2),
    ]


async def test_the_idle_time_before_scaling_to_zero_outlives_a_restart(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # The last node leaves once the pool has been idle for 30 minutes.
    config = POOLS.replace('period = "10m"', 'period = "10m"\nidle_timeout = "30m"')

    async def start(service: ControlPlane) -> object:
        await register(service, "d0", pool="dev")
        return await round_at(0, 0)(service)

    steps = [start, round_at(0, 20 * 60), round_at(0, 10 * 60 + 1)]
    results = await same_with_and_without_restarts(
        tmp_path, pools_plane(config), steps, autojump_clock, restart_after=[1]
    )
    assert results == [(1, 1, None), (1, 1, None), (1, 0, None)]
