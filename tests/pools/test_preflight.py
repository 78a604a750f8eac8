"""Preflight: a pool's new nodes run their diagnostics before they take work, in virtual time, on
fake-provider machines whose diagnostics pass, fail or hang as each test scripts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import trio
import trio.testing
from support.pool_manager import ACTIVE, TERMINATED, events, fleet, open_fleet, pool, wait_until

from navarch.api import wire as m
from navarch.controlplane import ControlPlane
from navarch.daemon.local import LocalMachines
from navarch.model import NodeStatus
from navarch.plugins import Diagnosis, HealthEvent, HealthEventType

CONFIG = """
[providers.fake]
type = "fake"
provision_delay = "20s"

[pools.dev]
instance_type = "h100-8x"
min_nodes = 2
max_nodes = 4
scale_interval = "10s"

[pools.dev.preflight]
enabled = true
level = 2
timeout = "10m"

[[pools.dev.providers]]
provider = "fake"
"""


class Diagnostics:
    """Each new node's diagnostic takes the next scripted outcome ("pass", "fail" or "hang"),
    and "pass" once the script runs out; diagnostics take a minute."""

    def __init__(self, *outcomes: str) -> None:
        self._outcomes = list(outcomes)
        self.by_node: dict[str, str] = {}
        self.levels: list[int | None] = []

    def machines(self, service: ControlPlane, nursery: trio.Nursery) -> LocalMachines:
        return LocalMachines(service, nursery, diagnose=self.diagnose)

    async def diagnose(self, node_id: str, level: int | None) -> Diagnosis:
        if node_id not in self.by_node:
            self.by_node[node_id] = self._outcomes.pop(0) if self._outcomes else "pass"
        self.levels.append(level)
        outcome = self.by_node[node_id]
        await trio.sleep(60)
        if outcome == "hang":
            await trio.sleep_forever()
        if outcome == "fail":
            # The failure's event reaches the health policy too, which would replace the node
            # itself: the pool still asks for one successor only.
            event = HealthEvent(
                type=HealthEventType.DIAGNOSTIC,
                time=datetime.now(UTC),
                gpu_index=3,
                message="DCGM memory: fail on GPU 3",
                details={"check": "dcgm", "test": "memory", "result": "fail", "level": "2"},
            )
            return Diagnosis(
                ok=False, summary="dcgm level 2: memory failed on GPU 3", events=(event,)
            )
        return Diagnosis(ok=True, summary="dcgm level 2: 12 passed")


def active(service: ControlPlane) -> list[str]:
    return sorted(n.node_id for n in service.all_nodes() if n.pool == "dev" and n.status is ACTIVE)


async def test_new_nodes_stay_cordoned_until_their_diagnostics_pass(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    diagnostics = Diagnostics()
    async with open_fleet(tmp_path / "navarch.db", fleet(CONFIG), diagnostics.machines) as service:
        await wait_until(lambda: len(diagnostics.by_node) == 2)
        # Registered and running their diagnostics: held, and counted as in flight.
        held = [n for n in service.all_nodes() if n.pool == "dev"]
        assert [(n.status, n.status_reason) for n in held] == [
            (NodeStatus.CORDONED, "preflight")
        ] * 2
        await trio.sleep(1)
        state = service.pools.pools["dev"].state
        assert state is not None
        assert (state.current_nodes, state.healthy_nodes, state.in_flight) == (2, 0, 2)
        described = await pool(service)
        assert (described.size, described.in_flight) == (0, 2)
        [instance, _] = described.instances
        assert instance.preflight is not None
        assert instance.preflight.state is m.PreflightState.PREFLIGHT_STATE_RUNNING
        assert instance.preflight.level == 2

        await wait_until(lambda: len(active(service)) == 2)
        assert diagnostics.levels == [2, 2]
        passed = await events(service, "node.preflight_passed")
        assert sorted(e.node_id for e in passed) == active(service)
        assert passed[0].reason == "dcgm level 2: 12 passed"
        await trio.sleep(300)
        assert len(await events(service, "instance.provisioned")) == 2
        states = [i.preflight.state for i in (await pool(service)).instances if i.preflight]
        assert states == [m.PreflightState.PREFLIGHT_STATE_PASSED] * 2


async def test_a_node_that_fails_its_diagnostics_is_replaced(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    diagnostics = Diagnostics("fail")
    async with open_fleet(tmp_path / "navarch.db", fleet(CONFIG), diagnostics.machines) as service:
        await wait_until(lambda: len(active(service)) == 2)
        [bad] = [node for node, outcome in diagnostics.by_node.items() if outcome == "fail"]
        assert service.node_status(bad) is TERMINATED
        assert bad not in active(service)
        [failed] = await events(service, "node.preflight_failed")
        assert (failed.node_id, failed.reason) == (bad, "dcgm level 2: memory failed on GPU 3")
        await trio.sleep(300)
        # Two for min_nodes and one successor for the node that failed; no more.
        assert len(await events(service, "instance.provisioned")) == 3
        described = await pool(service)
        assert len(described.instances) == 2


async def test_diagnostics_that_do_not_answer_in_time_fail_the_preflight(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    diagnostics = Diagnostics("hang")
    async with open_fleet(tmp_path / "navarch.db", fleet(CONFIG), diagnostics.machines) as service:
        await wait_until(lambda: len(diagnostics.by_node) == 2)
        [stuck] = [node for node, outcome in diagnostics.by_node.items() if outcome == "hang"]
        # Within the timeout it waits, and the pool provisions nothing for it.
        await trio.sleep(500)
        assert service.node_status(stuck) is NodeStatus.CORDONED
        assert len(await events(service, "instance.provisioned")) == 2
        await wait_until(lambda: service.node_status(stuck) is TERMINATED)
        [failed] = await events(service, "node.preflight_failed")
        assert failed.reason == "the diagnostics did not answer within 10m"
        await wait_until(lambda: len(active(service)) == 2)
        assert len(await events(service, "instance.provisioned")) == 3


async def test_a_pool_without_preflight_lets_new_nodes_in_at_once(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    diagnostics = Diagnostics()
    config = fleet(CONFIG.replace("enabled = true", "enabled = false"))
    async with open_fleet(tmp_path / "navarch.db", config, diagnostics.machines) as service:
        await wait_until(lambda: len(active(service)) == 2)
        assert diagnostics.levels == []
        assert all(i.preflight is None for i in (await pool(service)).instances)
