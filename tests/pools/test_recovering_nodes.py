"""A node whose GPU is reset or that reboots counts as coming back: its pool provisions nothing for
it until its episode escalates to replacement."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing
from support.api import rpc
from support.pool_manager import (
    ADMIN,
    TERMINATED,
    events,
    fleet,
    healthy_nodes,
    open_fleet,
    wait_until,
)
from support.recovery import FAILED, REBOOT, DaemonDouble, DoubleMachines
from support.remediation import xid

from navarch.api import wire as m
from navarch.controlplane import ControlPlane

CONFIG = """
[providers.fake]
type = "fake"
provision_delay = "20s"

[pools.dev]
instance_type = "h100-8x"
min_nodes = 2
max_nodes = 8
scale_interval = "10s"

[[pools.dev.providers]]
provider = "fake"
"""

RESET_STEP = m.RemediationStep.REMEDIATION_STEP_RESET_GPU
DONE = m.RemediationStep.REMEDIATION_STEP_DONE


class Machines:
    """Boots the fake provider's machines as daemon doubles, and keeps the runner."""

    def __init__(self) -> None:
        self.runner: DoubleMachines | None = None

    def __call__(self, service: ControlPlane, nursery: trio.Nursery) -> DoubleMachines:
        self.runner = DoubleMachines(service, nursery)
        return self.runner

    def daemon(self, node_id: str) -> DaemonDouble:
        assert self.runner is not None
        return self.runner.daemons[node_id]


async def step_of(service: ControlPlane, node_id: str) -> m.RemediationStep | None:
    request = m.ListRemediationsRequest(node_id=node_id)
    found = (await rpc(service, request, ADMIN)).remediations
    return found[0].step if found else None


async def wait_for_step(service: ControlPlane, node_id: str, step: m.RemediationStep) -> None:
    with trio.fail_after(3600):
        while await step_of(service, node_id) is not step:
            await trio.sleep(1)


async def test_a_node_under_reset_gets_no_successor_until_its_episode_escalates(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    machines = Machines()
    async with open_fleet(tmp_path / "navarch.db", fleet(CONFIG), machines) as service:
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        victim = sorted(n.node_id for n in healthy_nodes(service))[0]
        daemon = machines.daemon(victim)
        daemon.answering = False
        await daemon.report(xid(154, gpu=1, recovery_action="GPU_RESET"))
        daemon.answering = True
        daemon.reset_result = FAILED
        daemon.reset_message = "GPU 1 did not come back"
        # The first reset is held back for a while: many rounds pass with the node recovering.
        await wait_for_step(service, victim, RESET_STEP)
        daemon.answering = False
        # Within the reset timeout (10m): the episode still waits for the acknowledgement.
        await trio.sleep(300)
        assert len(await events(service, "instance.provisioned")) == 2
        assert len(healthy_nodes(service)) == 1
        # The pool counts the node as coming back, as it counts an instance in flight.
        state = service.pools.pools["dev"].state
        assert state is not None
        assert (state.current_nodes, state.healthy_nodes, state.in_flight) == (2, 1, 1)

        daemon.answering = True
        await wait_for_step(service, victim, DONE)
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        await trio.sleep(600)
        assert service.node_status(victim) is TERMINATED
        # Two for min_nodes and one successor once the reset failed; no more.
        assert len(await events(service, "instance.provisioned")) == 3
        assert daemon.resets == ["1"]


async def test_a_node_rebooted_by_the_fake_provider_comes_back_without_a_successor(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    machines = Machines()
    async with open_fleet(tmp_path / "navarch.db", fleet(CONFIG), machines) as service:
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        victim = sorted(n.node_id for n in healthy_nodes(service))[0]
        before = machines.daemon(victim)
        await before.report(xid(154, recovery_action="NODE_REBOOT"))
        await wait_for_step(service, victim, DONE)
        await trio.sleep(600)

        # The fake provider booted the machine again: a new daemon registered as the same node.
        assert machines.daemon(victim) is not before
        assert len(await events(service, "node.reregistered")) >= 1
        assert {n.node_id for n in healthy_nodes(service)} >= {victim}
        assert len(healthy_nodes(service)) == 2
        assert len(await events(service, "instance.provisioned")) == 2
        issued = [e for e in await events(service, "command.issued") if e.node_id == victim]
        assert REBOOT.value not in [e.details["type"] for e in issued]
