"""A node that loses its heartbeat is replaced through remediation, on a real control plane."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing
from support.api import rpc
from support.pool_manager import (
    ADMIN,
    TERMINATED,
    UNHEALTHY,
    events,
    fleet,
    healthy_nodes,
    live_nodes,
    open_fleet,
    wait_until,
)

from navarch.api import wire as m
from navarch.controlplane import Caller, ControlPlane
from navarch.model import InstanceStatus, NodeStatus

DONE = m.RemediationStep.REMEDIATION_STEP_DONE
HELD = m.RemediationStep.REMEDIATION_STEP_HELD
PENDING = m.RemediationStep.REMEDIATION_STEP_PENDING

POOL = """
[providers.fake]
type = "fake"
provision_delay = "20s"

[pools.dev]
instance_type = "h100-8x"
min_nodes = {min_nodes}
max_nodes = 8
scale_interval = "10s"

[pools.dev.health]
breaker_percent = 40

[[pools.dev.providers]]
provider = "fake"
"""


def fake(service: ControlPlane):
    return service.pools.providers["fake"]


def status_of(service: ControlPlane, node_id: str) -> NodeStatus | None:
    return next((n.status for n in service.all_nodes() if n.node_id == node_id), None)


async def episodes(service: ControlPlane) -> list[m.Remediation]:
    request = m.ListRemediationsRequest(pool="dev")
    return list((await rpc(service, request, ADMIN)).remediations)


async def listed(service: ControlPlane) -> set[str]:
    return {i.instance_id for i in await fake(service).list()}


async def test_a_silent_node_is_terminated_and_the_pool_holds_exactly_min(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_fleet(tmp_path / "navarch.db", fleet(POOL.format(min_nodes=2))) as service:
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        victim = sorted(fake(service).machines)[0]
        fake(service).machines[victim].power_off()
        await wait_until(lambda: status_of(service, victim) is TERMINATED)
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        # Long enough for any second successor to show up.
        await trio.sleep(600)

        assert victim not in await listed(service)
        assert service.pools.instances.records[("fake", victim)].status is InstanceStatus.TERMINATED
        assert len(await listed(service)) == 2
        assert len(live_nodes(service)) == len(healthy_nodes(service)) == 2
        # Two for min_nodes, one successor, and no more.
        assert len(await events(service, "instance.provisioned")) == 3

        [episode] = await episodes(service)
        assert (episode.node_id, episode.rule, episode.step) == (victim, "heartbeat-lost", DONE)
        steps = [
            (e.details["step"], e.reason)
            for e in reversed(await events(service, "remediation.step", "remediation.completed"))
            if e.node_id == victim
        ]
        assert [step for step, _ in steps] == ["cordon", "terminate", "done"]
        assert "drain skipped" in steps[1][1] and "lost its heartbeat" in steps[1][1]


async def test_a_zone_going_silent_trips_the_breaker_and_terminates_none_past_it(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_fleet(tmp_path / "navarch.db", fleet(POOL.format(min_nodes=4))) as service:
        await wait_until(lambda: len(healthy_nodes(service)) == 4)
        zone = sorted(fake(service).machines)[:2]
        for node_id in zone:
            fake(service).machines[node_id].power_off()
        await wait_until(lambda: "dev" in service.remediation.switches.open_breakers)
        # The pool provisions past the silent nodes; the breaker keeps the held one alive.
        await wait_until(lambda: len(healthy_nodes(service)) == 4)
        await trio.sleep(600)

        found = {e.node_id: e for e in await episodes(service)}
        assert set(found) == set(zone)
        assert sorted(e.step.name for e in found.values()) == [
            "REMEDIATION_STEP_DONE",
            "REMEDIATION_STEP_HELD",
        ]
        [held] = [e for e in found.values() if e.step is HELD]
        [done] = [e for e in found.values() if e.step is DONE]
        assert "more than 40% of pool dev" in held.detail
        # The episode within the line ended its node; the one past it ended nothing.
        assert status_of(service, done.node_id) is TERMINATED
        assert done.node_id not in await listed(service)
        assert status_of(service, held.node_id) is UNHEALTHY
        assert held.node_id in await listed(service)
        assert len(await events(service, "remediation.breaker_opened")) == 1


async def test_a_node_back_before_its_terminate_stays_out_and_is_replaced(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_fleet(tmp_path / "navarch.db", fleet(POOL.format(min_nodes=2))) as service:
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        victim = sorted(fake(service).machines)[0]
        await rpc(service, m.PauseRemediationRequest(pool="dev"), ADMIN)
        fake(service).machines[victim].power_off()
        await wait_until(lambda: service.remediation.open_episode(victim) is not None)
        [episode] = await episodes(service)
        assert (episode.rule, episode.step) == ("heartbeat-lost", PENDING)
        # The node flaps back: it stays unhealthy, and its episode goes on once resumed.
        await rpc(service, m.SendHeartbeatRequest(node_id=victim), Caller.node(victim))
        node = next(n for n in service.all_nodes() if n.node_id == victim)
        assert (node.status, node.status_reason) == (
            UNHEALTHY,
            "heartbeat lost; heartbeats resumed",
        )
        await rpc(service, m.ResumeRemediationRequest(pool="dev"), ADMIN)
        await wait_until(lambda: status_of(service, victim) is TERMINATED)
        assert victim not in await listed(service)
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        await trio.sleep(300)
        assert len(await listed(service)) == 2
