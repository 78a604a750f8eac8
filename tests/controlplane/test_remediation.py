from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import trio
import trio.testing
from support.api import rpc
from support.remediation import (
    CANCELLED,
    DEGRADED,
    DONE,
    DRAIN_STEP,
    HEALTHY,
    HELD,
    PENDING,
    SERVER,
    UNHEALTHY_HEALTH,
    PoolManagerStandIn,
    ack_drains,
    daemon_acking_drains,
    episodes,
    open_plane,
    remapped_rows_failure,
    report,
    wait_for_step,
    xid,
)
from support.service import (
    ACTIVE,
    ADMIN,
    DRAIN,
    DRAINING,
    OK,
    TERMINATED,
    UNCORDON,
    UNHEALTHY,
    ack,
    events,
    issue,
    kinds,
    node,
    register,
    status,
)

from navarch.api import wire as m
from navarch.api.codec import ApiError
from navarch.api.metrics import ApiMetrics
from navarch.config import Config, HealthConfig, PoolHealthConfig
from navarch.controlplane import ControlPlane
from navarch.errors import ConfigError
from navarch.store import SQLiteStore


async def register_pool(service: ControlPlane, count: int, pool: str = "train") -> list[str]:
    names = [f"{pool}-{i}" for i in range(count)]
    for name in names:
        await register(service, name, pool=pool)
    return names


async def test_an_xid_79_cordons_drains_terminates_and_replaces_the_node(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    replacer = PoolManagerStandIn()
    async with open_plane(tmp_path / "db", replacer) as service:
        await register_pool(service, 4)
        answer = await report(service, "train-0", xid(79, gpu=3))
        assert (answer.status, answer.health) == (UNHEALTHY, UNHEALTHY_HEALTH)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(daemon_acking_drains, service, "train-0")
            await wait_for_step(service, "train-0", DONE)
        assert replacer.replaced == ["train-0"]
        assert await status(service, "train-0") is TERMINATED
        [episode] = await episodes(service)
        assert (episode.rule, episode.pool) == ("xid-replace", "train")
        steps = [
            e.details["step"]
            for e in await events(service, "train-0")
            if e.kind.startswith("remediation.")
        ]
        assert steps == ["pending", "cordon", "drain", "terminate", "done"]
        # A late duplicate of the report and a repeated acknowledgement change nothing.
        before = await events(service, "train-0")
        await report(service, "train-0", xid(79, gpu=3))
        await ack_drains(service, "train-0")
        assert await events(service, "train-0") == before
        assert await episodes(service) == [episode]


class RecordingNotifier:
    def __init__(self) -> None:
        self.kinds: list[str] = []

    def notify(self, event: m.Event) -> None:
        self.kinds.append(event.kind)

    async def run(self) -> None:
        await trio.sleep_forever()


async def test_notifiers_hear_lifecycle_and_remediation_events(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    notifier = RecordingNotifier()
    async with open_plane(tmp_path / "db", PoolManagerStandIn(), notifiers=[notifier]) as service:
        await register_pool(service, 4)
        await report(service, "train-0", xid(79))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(daemon_acking_drains, service, "train-0")
            await wait_for_step(service, "train-0", DONE)
    for kind in ("node.status_changed", "remediation.started", "remediation.completed"):
        assert kind in notifier.kinds


async def test_one_xid_13_degrades_the_node_and_starts_no_episode(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_plane(tmp_path / "db", PoolManagerStandIn()) as service:
        await register_pool(service, 2)
        answer = await report(service, "train-0", xid(13, pid="100"))
        assert (answer.status, answer.health) == (ACTIVE, DEGRADED)
        assert "health.alert" in await kinds(service, "train-0")
        await trio.sleep(60)
        assert await episodes(service) == []
        # One healthy report does not erase the fault; the window does.
        assert (await report(service, "train-0")).health is DEGRADED
        await trio.sleep(SERVER.heartbeat_interval.total_seconds())
        await trio.sleep(HealthConfig().window.total_seconds())
        assert (await node(service, "train-0")).health is HEALTHY


async def test_xid_13_from_three_processes_on_one_gpu_drains_the_node(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_plane(tmp_path / "db", PoolManagerStandIn()) as service:
        await register_pool(service, 2)
        for pid in ("100", "200"):
            assert (await report(service, "train-0", xid(13, pid=pid))).status is ACTIVE
        answer = await report(service, "train-0", xid(13, pid="300"))
        assert (answer.status, answer.health) == (DRAINING, UNHEALTHY_HEALTH)
        got = await rpc(service, m.GetNodeRequest(node_id="train-0"), ADMIN)
        assert [c.type for c in got.open_commands] == [DRAIN]
        assert await episodes(service) == []


async def test_with_auto_recover_off_a_reset_verdict_drains_and_holds_the_node(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    pools = {"train": PoolHealthConfig(auto_recover=False)}
    async with open_plane(tmp_path / "db", PoolManagerStandIn(), pools=pools) as service:
        await register_pool(service, 2)
        answer = await report(service, "train-0", xid(154, recovery_action="GPU_RESET"))
        assert answer.status is DRAINING
        [required] = await events(service, "train-0", "health.action_required")
        assert required.details["action"] == "reset_gpu"
        assert "a GPU reset (auto_recover is off" in required.reason
        await ack_drains(service, "train-0")
        await trio.sleep(HealthConfig().window.total_seconds() * 2)
        # Healthy again once the event ages out, but out of service until an operator says so.
        current = await node(service, "train-0")
        assert (current.health, current.status) == (HEALTHY, m.NodeStatus.NODE_STATUS_DRAINED)
        assert await episodes(service) == []
        await issue(service, "train-0", UNCORDON)
        assert await status(service, "train-0") is ACTIVE


async def test_a_remapped_row_failure_replaces_the_node(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    replacer = PoolManagerStandIn()
    async with open_plane(tmp_path / "db", replacer) as service:
        await register_pool(service, 3)
        await report(service, "train-1", remapped_rows_failure(gpu=2))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(daemon_acking_drains, service, "train-1")
            await wait_for_step(service, "train-1", DONE)
        assert replacer.replaced == ["train-1"]


async def test_an_unhealthy_node_never_returns_to_service_on_its_own(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    pools = {"train": PoolHealthConfig(auto_replace=False)}
    async with open_plane(tmp_path / "db", pools=pools) as service:
        await register_pool(service, 1)
        await report(service, "train-0", xid(79))
        assert await status(service, "train-0") is DRAINING
        [required] = await events(service, "train-0", "health.action_required")
        assert "auto_replace is off" in required.reason
        await trio.sleep(HealthConfig().window.total_seconds() * 2)
        await report(service, "train-0")
        current = await node(service, "train-0")
        assert current.health is HEALTHY
        assert current.status is DRAINING
        assert await episodes(service) == []


async def test_the_breaker_opens_past_half_the_pool_and_resets_only_by_command(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_plane(tmp_path / "db", PoolManagerStandIn()) as service:
        names = await register_pool(service, 4)
        for name in names[:3]:
            await report(service, name, xid(79))
        found = {e.node_id: e for e in await episodes(service)}
        assert found["train-2"].step is HELD
        assert "more than 50% of pool train" in found["train-2"].detail
        assert {found["train-0"].step, found["train-1"].step} != {HELD}
        listed = await rpc(service, m.ListRemediationsRequest(), ADMIN)
        assert listed.controls.open_breakers == ("train",)
        assert [e.kind for e in await events(service, "", "remediation.breaker_opened")] == [
            "remediation.breaker_opened"
        ]
        assert 'navarch_remediation_breaker_open{pool="train"} 1.0' in (
            ApiMetrics(service).render().decode()
        )
        # Time alone does not close it.
        await trio.sleep(3600)
        await report(service, "train-3", xid(79))
        assert (await episodes(service, node_id="train-3"))[0].step is HELD
        reset = await rpc(service, m.ResetBreakerRequest(pool="train"), ADMIN)
        assert reset.controls.open_breakers == ()
        assert 'navarch_remediation_breaker_open{pool="train"} 0.0' in (
            ApiMetrics(service).render().decode()
        )
        with pytest.raises(ApiError) as raised:
            await rpc(service, m.ResetBreakerRequest(pool="train"), ADMIN)
        assert raised.value.code == "failed_precondition"


async def test_a_restart_resumes_an_episode_at_its_step(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "db"
    replacer = PoolManagerStandIn()
    async with open_plane(path, replacer) as service:
        await register_pool(service, 4)
        await report(service, "train-0", xid(79))
        await wait_for_step(service, "train-0", DRAIN_STEP)
        await trio.sleep(30)
        [episode] = await episodes(service)
        assert episode.step is DRAIN_STEP
    async with open_plane(path, replacer) as service:
        assert (await node(service, "train-0")).health is UNHEALTHY_HEALTH
        assert await status(service, "train-0") is DRAINING
        async with trio.open_nursery() as nursery:
            nursery.start_soon(daemon_acking_drains, service, "train-0")
            await wait_for_step(service, "train-0", DONE)
        steps = [
            e.details["step"]
            for e in await events(service, "train-0")
            if e.kind.startswith("remediation.")
        ]
        assert steps == ["pending", "cordon", "drain", "terminate", "done"]
        assert replacer.replaced == ["train-0"]
        issued = [e for e in await events(service, "train-0", "command.issued")]
        assert [e.details["type"] for e in issued].count(DRAIN.value) == 1


async def test_a_drain_that_times_out_proceeds_or_holds_as_configured(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    pools = {
        "train": PoolHealthConfig(drain_timeout=timedelta(minutes=2)),
        "serve": PoolHealthConfig(drain_timeout=timedelta(minutes=2), on_drain_timeout="hold"),
    }
    replacer = PoolManagerStandIn()
    async with open_plane(tmp_path / "db", replacer, pools) as service:
        await register_pool(service, 2, "train")
        await register_pool(service, 2, "serve")
        await report(service, "train-0", xid(79))
        await report(service, "serve-0", xid(79))
        await wait_for_step(service, "train-0", DONE)
        await wait_for_step(service, "serve-0", HELD)
        assert replacer.replaced == ["train-0"]
        [held] = await episodes(service, node_id="serve-0")
        assert "did not finish within 2m" in held.detail
        assert await status(service, "serve-0") is DRAINING


async def test_operators_pause_resume_and_cancel(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    replacer = PoolManagerStandIn()
    async with open_plane(tmp_path / "db", replacer) as service:
        await register_pool(service, 4)
        paused = await rpc(
            service, m.PauseRemediationRequest(pool="train", reason="maintenance"), ADMIN
        )
        assert paused.controls.paused_pools == ("train",)
        await report(service, "train-0", xid(79))
        await trio.sleep(600)
        [episode] = await episodes(service)
        assert episode.step is PENDING
        assert await status(service, "train-0") is UNHEALTHY
        await rpc(service, m.ResumeRemediationRequest(pool="train"), ADMIN)
        await wait_for_step(service, "train-0", DRAIN_STEP)
        cancel = m.CancelRemediationRequest(episode_id=episode.episode_id, reason="by hand")
        cancelled = (await rpc(service, cancel, ADMIN)).remediation
        assert (cancelled.step, cancelled.detail) == (CANCELLED, "by hand")
        await trio.sleep(3600)
        assert replacer.replaced == []
        assert (await episodes(service))[0].step is CANCELLED
        with pytest.raises(ApiError) as raised:
            await rpc(service, cancel, ADMIN)
        assert raised.value.code == "failed_precondition"
        with pytest.raises(ApiError) as raised:
            await rpc(service, m.PauseRemediationRequest(pool="nope"), ADMIN)
        assert raised.value.code == "not_found"


async def test_an_episode_with_no_way_to_replace_is_held_with_the_reason(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_plane(tmp_path / "db") as service:
        await register_pool(service, 2)
        await register(service, "loose")
        await report(service, "train-0", xid(79))
        await report(service, "loose", xid(79))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(daemon_acking_drains, service, "train-0")
            nursery.start_soon(daemon_acking_drains, service, "loose")
            await wait_for_step(service, "train-0", HELD)
            await wait_for_step(service, "loose", HELD)
            nursery.cancel_scope.cancel()
        [held] = await episodes(service, node_id="train-0")
        assert "no pools are configured" in held.detail
        assert await status(service, "train-0") is m.NodeStatus.NODE_STATUS_DRAINED


async def test_a_failing_replacer_is_retried_and_then_held(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    replacer = PoolManagerStandIn()
    replacer.failures = 2
    async with open_plane(tmp_path / "db", replacer) as service:
        await register_pool(service, 4)
        await report(service, "train-0", xid(79))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(daemon_acking_drains, service, "train-0")
            await wait_for_step(service, "train-0", DONE)
        assert len(await events(service, "train-0", "remediation.step_failed")) == 2
        replacer.failures = 10
        await report(service, "train-1", xid(79))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(daemon_acking_drains, service, "train-1")
            await wait_for_step(service, "train-1", HELD)
            nursery.cancel_scope.cancel()
        [held] = await episodes(service, node_id="train-1")
        assert "the provider is unavailable" in held.detail


async def test_a_bad_policy_file_refuses_to_start(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[[rules]]\nname = "x"\ncondition = "event.("\n')
    config = Config(health=HealthConfig(policy=str(policy)))
    async with SQLiteStore.open(tmp_path / "db", threaded=False) as store:
        with pytest.raises(ConfigError) as raised:
            async with ControlPlane.open(store, SERVER, config=config):
                pass
    assert "policy.toml" in str(raised.value)


async def test_a_restart_keeps_a_bad_health_for_one_window(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "db"
    async with open_plane(path) as service:
        await register_pool(service, 1)
        await report(service, "train-0", xid(13, pid="1"))
    async with open_plane(path) as service:
        assert (await report(service, "train-0")).health is DEGRADED
        await trio.sleep(HealthConfig().window.total_seconds() + 60)
        assert (await node(service, "train-0")).health is HEALTHY
        assert await status(service, "train-0") is ACTIVE


async def test_an_acknowledged_drain_after_cancel_changes_no_episode(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_plane(tmp_path / "db", PoolManagerStandIn()) as service:
        await register_pool(service, 4)
        await report(service, "train-0", xid(79))
        await wait_for_step(service, "train-0", DRAIN_STEP)
        [episode] = await episodes(service)
        request = m.CancelRemediationRequest(episode_id=episode.episode_id)
        await rpc(service, request, ADMIN)
        got = await rpc(service, m.GetNodeRequest(node_id="train-0"), ADMIN)
        [drain] = [c for c in got.open_commands if c.type is DRAIN]
        await ack(service, "train-0", drain.command_id, OK)
        await ack(service, "train-0", drain.command_id, OK)
        await trio.sleep(600)
        assert [e.step for e in await episodes(service)] == [CANCELLED]
        assert await status(service, "train-0") is m.NodeStatus.NODE_STATUS_DRAINED
