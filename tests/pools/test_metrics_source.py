"""Queue depth from a metrics-source plugin, on a real control plane in virtual time."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import trio
import trio.testing
from attrs import frozen
from support.api import rpc
from support.pool_manager import (
    ADMIN,
    events,
    healthy_nodes,
    live_nodes,
    open_fleet,
    pool,
    wait_until,
)

from navarch.api import wire as m
from navarch.config import parse_config
from navarch.errors import ConfigError
from navarch.plugins import hookimpl
from navarch.plugins.manager import load_plugins

QUEUE = """
[providers.fake]
provision_delay = "20s"

[pools.dev]
instance_type = "h100-8x"
min_nodes = 0
max_nodes = 5
scale_interval = "10s"

[[pools.dev.providers]]
provider = "fake"

[pools.dev.autoscaler]
type = "queue"
jobs_per_node = 10

[pools.dev.metrics]
type = "scripted"
queue = "training"
"""


@frozen(kw_only=True)
class ScriptedSettings:
    queue: str = "default"


class ScriptedSource:
    """A queue whose depth the test sets; `error` makes the next readings raise it."""

    def __init__(self) -> None:
        self.depth: int | None = None
        self.error: Exception | None = None
        self.hang = False
        self.calls: list[str] = []

    async def queue_depth(self, pool: str) -> int | None:
        self.calls.append(pool)
        if self.hang:
            await trio.sleep_forever()
        if self.error is not None:
            raise self.error
        return self.depth


class ScriptedPlugin:
    def __init__(self) -> None:
        self.source = ScriptedSource()
        self.settings: list[ScriptedSettings] = []
        plugin = self

        def factory(settings: ScriptedSettings) -> ScriptedSource:
            plugin.settings.append(settings)
            return plugin.source

        factory.Settings = ScriptedSettings  # type: ignore[attr-defined]
        self.factory = factory

    @hookimpl
    def navarch_metrics_sources(self, register):
        register("scripted", self.factory)


def scripted() -> tuple[ScriptedPlugin, object]:
    plugin = ScriptedPlugin()
    plugins = load_plugins(entry_points=False, extra={"scripted": plugin})
    return plugin, plugins


async def test_a_metrics_source_drives_a_queue_pool_up_and_down(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    plugin, plugins = scripted()
    config = parse_config(QUEUE, plugins=plugins)
    assert plugin.settings == []  # checking the table builds nothing
    async with open_fleet(tmp_path / "navarch.db", config) as service:
        assert plugin.settings == [ScriptedSettings(queue="training")]
        await trio.sleep(60)
        assert live_nodes(service) == []
        assert (await pool(service)).queue_depth is None
        plugin.source.depth = 25
        await wait_until(lambda: len(healthy_nodes(service)) == 3)
        view = await pool(service)
        assert (view.queue_depth, view.target) == (25, 3)
        assert view.queue_depth_at is not None
        plugin.source.depth = 0
        await wait_until(lambda: live_nodes(service) == [])
        assert set(plugin.source.calls) == {"dev"}
        reasons = [e.reason for e in await events(service, "pool.scaled")]
        assert any("queue depth 25 needs 3 nodes" in r for r in reasons)


async def test_no_data_keeps_a_pushed_depth_and_a_newer_reading_replaces_it(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    plugin, plugins = scripted()
    async with open_fleet(tmp_path / "navarch.db", parse_config(QUEUE, plugins=plugins)) as service:
        await rpc(service, m.ReportQueueDepthRequest(pool="dev", depth=15), ADMIN)
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        assert (await pool(service)).queue_depth == 15
        plugin.source.depth = 35
        await wait_until(lambda: len(healthy_nodes(service)) == 4)
        assert (await pool(service)).queue_depth == 35


async def test_a_failing_source_keeps_the_last_depth_and_the_loop_running(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    plugin, plugins = scripted()
    # Long enough that the last depth is kept throughout; see the next test for when it is not.
    text = QUEUE.replace('scale_interval = "10s"', 'scale_interval = "10s"\nmetrics_max_age = "1h"')
    async with open_fleet(tmp_path / "navarch.db", parse_config(text, plugins=plugins)) as service:
        plugin.source.depth = 20
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        plugin.source.error = RuntimeError("queue service unreachable")
        calls = len(plugin.source.calls)
        await trio.sleep(20 * 60)
        # Rounds went on, and the pool held its size on the last known depth.
        assert len(plugin.source.calls) >= calls + 100
        assert len(live_nodes(service)) == 2
        view = await pool(service)
        assert view.queue_depth == 20
        assert "metrics source scripted failed: RuntimeError: queue service unreachable" in (
            view.last_decision
        )
        decided = [
            e
            for e in await events(service, "pool.decision", "pool.scaled")
            if "unreachable" in e.reason
        ]
        assert len(decided) == 1  # recorded once, not every round
        # A source that hangs is cut off, and the loop goes on.
        plugin.source.error, plugin.source.hang = None, True
        calls = len(plugin.source.calls)
        await trio.sleep(5 * 60)
        assert len(plugin.source.calls) >= calls + 10
        assert "timed out after 5s" in (await pool(service)).last_decision
        # Once it answers again, it drives the pool again.
        plugin.source.hang, plugin.source.depth = False, 40
        await wait_until(lambda: len(healthy_nodes(service)) == 4)
        assert "metrics source" not in (await pool(service)).last_decision


async def test_a_depth_older_than_metrics_max_age_is_dropped_and_the_pool_holds(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    plugin, plugins = scripted()
    async with open_fleet(tmp_path / "navarch.db", parse_config(QUEUE, plugins=plugins)) as service:
        plugin.source.depth = 20
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        plugin.source.error = RuntimeError("queue service unreachable")
        await trio.sleep(4 * 60)
        assert (await pool(service)).queue_depth == 20
        await trio.sleep(2 * 60)
        # Past the default 5m the depth is gone, so the queue autoscaler holds the pool.
        view = await pool(service)
        assert (view.queue_depth, len(live_nodes(service))) == (None, 2)
        assert view.last_decision.startswith("no queue depth reported")
        assert (
            "metrics source scripted failed: RuntimeError: queue service unreachable; "
            "the last queue depth is older than metrics_max_age 5m, dropped"
        ) in view.last_decision
        # A newer depth, pushed here, drives the pool again.
        await rpc(service, m.ReportQueueDepthRequest(pool="dev", depth=35), ADMIN)
        await wait_until(lambda: len(healthy_nodes(service)) == 4)
        # A source that answers with no data for longer than metrics_max_age drops it too.
        plugin.source.error, plugin.source.depth = None, None
        await trio.sleep(6 * 60)
        view = await pool(service)
        assert (view.queue_depth, len(live_nodes(service))) == (None, 4)
        assert "metrics source scripted has no data; the last queue depth is older" in (
            view.last_decision
        )
        plugin.source.depth = 0
        await wait_until(lambda: live_nodes(service) == [])


def problems(text: str) -> list[str]:
    _, plugins = scripted()
    with pytest.raises(ConfigError) as caught:
        parse_config(text, plugins=plugins)
    return caught.value.problems


def test_an_unknown_metrics_source_lists_the_registered_ones() -> None:
    assert problems(QUEUE.replace('type = "scripted"', 'type = "statsd"')) == [
        'pools.dev.metrics.type: no metrics_source plugin named "statsd" (registered: '
        "http-json, kubernetes, prometheus, rabbitmq, redis, scripted, slurm)"
    ]


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('queu = "x"', "pools.dev.metrics.queu: unknown key (did you mean 'queue'?)"),
        ("queue = 3", "pools.dev.metrics.queue: expected a string, got 3"),
        ("", None),
    ],
)
def test_a_bad_metrics_table_is_reported_with_its_path(table: str, expected: str | None) -> None:
    text = QUEUE.replace('queue = "training"', table)
    if expected is None:
        _, plugins = scripted()
        metrics = parse_config(text, plugins=plugins).pools["dev"].metrics
        assert metrics is not None and attrs.asdict(metrics.settings) == {"queue": "default"}
    else:
        assert problems(text) == [expected]


def test_a_metrics_table_needs_a_type() -> None:
    text = QUEUE.replace('type = "scripted"\n', "")
    assert problems(text) == ["pools.dev.metrics.type: required key is missing"]


def test_a_pool_without_a_metrics_table_has_none() -> None:
    text = QUEUE.split("[pools.dev.metrics]")[0]
    _, plugins = scripted()
    assert parse_config(text, plugins=plugins).pools["dev"].metrics is None
