"""Spot pools on a real control plane: preemptions, notices, and the fall back to on-demand."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio
import trio.testing
from support.api import rpc
from support.pool_manager import (
    ADMIN,
    TERMINATED,
    events,
    fleet,
    healthy_nodes,
    live_nodes,
    open_fleet,
    wait_until,
)

from navarch.api import wire as m
from navarch.api.codec import ApiError
from navarch.controlplane import Caller

TERMINATED_WIRE = m.NodeStatus.NODE_STATUS_TERMINATED
DRAINED_WIRE = m.NodeStatus.NODE_STATUS_DRAINED

SPOT = """
[providers.fake]
type = "fake"
{extra}

[pools.dev]
instance_type = "h100-8x"
min_nodes = {size}
max_nodes = {size}
scale_interval = "10s"

[[pools.dev.providers]]
provider = "fake"
spot = true
spot_fallback_after = 2
"""


def spot_fleet(size: int = 2, extra: str = ""):
    return fleet(SPOT.format(size=size, extra=extra))


def fake(service):
    return service.pools.providers["fake"]


async def episodes(service, node_id: str) -> list[m.Remediation]:
    reply = await rpc(service, m.ListRemediationsRequest(node_id=node_id, limit=10), ADMIN)
    return list(reply.remediations)


async def test_a_spot_pool_asks_for_spot_and_replaces_a_preempted_machine(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_fleet(tmp_path / "navarch.db", spot_fleet()) as service:
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        assert all(i.spot for i in await fake(service).list())
        victim = healthy_nodes(service)[0].node_id

        fake(service).preempt(victim)
        await wait_until(lambda: service.node_status(victim) is TERMINATED)
        await wait_until(lambda: len(healthy_nodes(service)) == 2)

        [preempted] = await events(service, "node.preempted")
        assert preempted.node_id == victim
        assert preempted.reason == f"preempted: fake took back instance {victim}"
        [episode] = await episodes(service, victim)
        assert episode.rule == "preempted"
        assert episode.step is m.RemediationStep.REMEDIATION_STEP_DONE
        # The machine was gone: no drain was asked of it.
        issued = [e for e in await events(service, "command.issued") if e.node_id == victim]
        assert "COMMAND_TYPE_DRAIN" not in [e.details["type"] for e in issued]
        assert victim not in {i.instance_id for i in await fake(service).list()}
        assert len(live_nodes(service)) == 2


async def test_a_notice_asks_for_the_successor_first_then_drains_before_the_machine_goes(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_fleet(tmp_path / "navarch.db", spot_fleet()) as service:
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        victim = healthy_nodes(service)[0].node_id
        notice = m.ReportPreemptionRequest(
            node_id=victim,
            kind="spot",
            at=datetime(2030, 1, 1, tzinfo=UTC),
            detail="spot instance-action terminate",
        )
        reply = await rpc(service, notice, Caller.node(victim))
        assert reply.episode_id
        # The daemon may say it again; it is one notice.
        again = await rpc(service, notice, Caller.node(victim))
        assert again.episode_id == reply.episode_id

        await wait_until(lambda: service.node_status(victim) is TERMINATED)
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        [noticed] = await events(service, "node.preemption_notice")
        assert noticed.actor == f"node:{victim}"
        assert "spot instance-action terminate" in noticed.reason
        # Oldest first: the successor was asked for before the node left.
        history = list(
            reversed(await events(service, "instance.provisioned", "node.status_changed"))
        )
        successor = next(
            i
            for i, e in enumerate(history)
            if e.kind == "instance.provisioned" and e.reason.startswith(f"replacing {victim}")
        )
        gone = next(
            i
            for i, e in enumerate(history)
            if e.kind == "node.status_changed"
            and e.node_id == victim
            and e.to_status == TERMINATED_WIRE
        )
        drained = next(
            i
            for i, e in enumerate(history)
            if e.kind == "node.status_changed"
            and e.node_id == victim
            and e.to_status == DRAINED_WIRE
        )
        assert drained < gone and successor < gone
        issued = [e for e in await events(service, "command.issued") if e.node_id == victim]
        assert "COMMAND_TYPE_DRAIN" in [e.details["type"] for e in issued]
        [episode] = await episodes(service, victim)
        assert episode.rule == "preemption-notice"
        assert episode.step is m.RemediationStep.REMEDIATION_STEP_DONE
        assert len(live_nodes(service)) == 2


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("sunset", "kind: expected one of spot, preempted, maintenance, got 'sunset'"),
        ("spot", "detail: expected at most 1000 characters"),
    ],
)
async def test_a_bad_notice_is_refused_and_changes_nothing(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, kind: str, problem: str
) -> None:
    async with open_fleet(tmp_path / "navarch.db", spot_fleet()) as service:
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        victim = healthy_nodes(service)[0].node_id
        detail = "x" * 1001 if kind == "spot" else ""
        with pytest.raises(ApiError) as refused:
            await rpc(
                service,
                m.ReportPreemptionRequest(node_id=victim, kind=kind, detail=detail),
                Caller.node(victim),
            )
        assert refused.value.code == "invalid_argument"
        assert refused.value.message == problem
        assert await episodes(service, victim) == []
        assert await events(service, "node.preemption_notice") == []


async def test_a_node_token_reports_only_its_own_notice(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_fleet(tmp_path / "navarch.db", spot_fleet()) as service:
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        mine, other = (n.node_id for n in healthy_nodes(service))
        with pytest.raises(ApiError) as refused:
            await rpc(
                service, m.ReportPreemptionRequest(node_id=other, kind="spot"), Caller.node(mine)
            )
        assert refused.value.code == "permission_denied"
        assert await episodes(service, other) == []


async def test_a_wave_of_preemptions_does_not_trip_the_breaker(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_fleet(tmp_path / "navarch.db", spot_fleet(size=4)) as service:
        await wait_until(lambda: len(healthy_nodes(service)) == 4)
        victims = [n.node_id for n in healthy_nodes(service)[:3]]
        for victim in victims:
            fake(service).preempt(victim)
        await wait_until(lambda: all(service.node_status(v) is TERMINATED for v in victims))
        await wait_until(lambda: len(healthy_nodes(service)) == 4)
        assert await events(service, "remediation.breaker_opened") == []
        for victim in victims:
            [episode] = await episodes(service, victim)
            assert episode.step is m.RemediationStep.REMEDIATION_STEP_DONE


async def test_no_spot_capacity_falls_back_to_on_demand_then_tries_spot_again(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    config = spot_fleet(extra="spot_capacity = 0")
    async with open_fleet(tmp_path / "navarch.db", config) as service:
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        [fallback] = await events(service, "pool.spot_fallback")
        assert fallback.reason == (
            "no spot capacity on fake in 2 attempts in a row; asking for on-demand machines for 5m"
        )
        machines = await fake(service).list()
        assert len(machines) == 2 and not any(i.spot for i in machines)
        view = (await rpc(service, m.GetPoolRequest(name="dev"), ADMIN)).pool
        assert [(b.provider, b.kind, b.spot) for b in view.blocked] == [("fake", "capacity", True)]

        # Once the on-demand window ends, a new machine is asked for as spot again.
        fake(service).settings = fake(service).settings.__class__(spot_capacity=5)
        await trio.sleep(301)
        victim = healthy_nodes(service)[0].node_id
        await service.pools.replace(victim, "test")
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        assert [i.spot for i in await fake(service).list() if i.instance_id != victim].count(
            True
        ) == 1
