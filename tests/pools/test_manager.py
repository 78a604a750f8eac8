"""The pool manager on a real control plane: fake nodes that register, heartbeat and scale."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing
from support.api import rpc
from support.pool_manager import (
    ADMIN,
    REACTIVE,
    TERMINATED,
    UNHEALTHY,
    events,
    fleet,
    healthy_nodes,
    live_nodes,
    open_fleet,
    pool,
    wait_until,
)

from navarch.api import wire as m
from navarch.daemon.local import LocalMachines
from navarch.model import InstanceStatus
from navarch.plugins import ProvisionRequest


class SwitchedOff:
    """A machine whose daemon never started."""

    def set_load(self, utilization: float) -> None:
        pass

    def power_off(self) -> None:
        pass


def fake(service):
    return service.pools.providers["fake"]


async def test_a_pool_starts_at_min_and_its_nodes_register(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_fleet(tmp_path / "navarch.db", fleet(REACTIVE)) as service:
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        await trio.sleep(120)
        assert len(live_nodes(service)) == 2
        nodes = healthy_nodes(service)
        assert {n.provider for n in nodes} == {"fake"}
        assert all(n.node_id.startswith("fake-") for n in nodes)
        view = await pool(service)
        assert (view.size, view.in_flight, view.healthy, view.target) == (2, 0, 2, 2)
        assert view.utilization == 50
        assert [i.status for i in view.instances] == ["running", "running"]
        scaled = await events(service, "pool.scaled")
        assert len(scaled) == 1
        assert scaled[0].details["target"] == "2"


async def test_a_busy_pool_grows_and_shrinks_after_the_window(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_fleet(tmp_path / "navarch.db", fleet(REACTIVE)) as service:
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        fake(service).set_load(95)
        await wait_until(lambda: len(healthy_nodes(service)) == 3)
        fake(service).set_load(5)
        grown_at = trio.current_time()
        await wait_until(lambda: len(live_nodes(service)) == 2)
        # Neither before the delay after a scale-up (10 minutes) nor the 5-minute window.
        assert trio.current_time() - grown_at >= 5 * 60
        gone = [n for n in service.all_nodes() if n.status is TERMINATED]
        assert len(gone) >= 1
        view = await pool(service)
        assert view.size == 2
        reasons = [e.reason for e in await events(service, "pool.scaled")]
        assert any("above 80" in r or "80" in r for r in reasons)


async def test_a_silent_node_is_not_counted_and_the_pool_holds_min(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_fleet(tmp_path / "navarch.db", fleet(REACTIVE)) as service:
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        victim = sorted(fake(service).machines)[0]
        fake(service).machines[victim].power_off()
        # Unhealthy at once, and terminated by its heartbeat-lost remediation right after.
        await wait_until(
            lambda: any(
                n.node_id == victim and n.status in (UNHEALTHY, TERMINATED)
                for n in service.all_nodes()
            )
        )
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        assert victim not in {n.node_id for n in healthy_nodes(service)}
        view = await pool(service)
        assert view.healthy == 2


async def test_instances_killed_behind_its_back_are_marked_and_replaced(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_fleet(tmp_path / "navarch.db", fleet(REACTIVE)) as service:
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        killed = sorted(fake(service).machines)
        for instance_id in killed:
            await fake(service).terminate(instance_id)
        await wait_until(
            lambda: len([n for n in healthy_nodes(service) if n.node_id not in killed]) == 2
        )
        records = service.pools.instances.records
        for instance_id in killed:
            assert records[("fake", instance_id)].status is InstanceStatus.FAILED
            node = next(n for n in service.all_nodes() if n.node_id == instance_id)
            assert node.status is TERMINATED
        assert len(await events(service, "instance.failed")) == 2


async def test_an_instance_that_never_registers_is_terminated_and_replaced(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    config = fleet(REACTIVE.replace('scale_interval = "10s"', 'registration_timeout = "2m"'))
    skipped: list[str] = []

    class FirstNeverBoots(LocalMachines):
        """The first instance runs, but its daemon never starts."""

        def boot(self, provider, instance, machine):
            if not skipped:
                skipped.append(instance.instance_id)
                return SwitchedOff()
            return super().boot(provider, instance, machine)

    async with open_fleet(tmp_path / "navarch.db", config, FirstNeverBoots) as service:
        provider = fake(service)
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        record = service.pools.instances.records[("fake", skipped[0])]
        assert record.status is InstanceStatus.FAILED
        assert "never registered within 2m" in record.reason
        assert skipped[0] not in {i.instance_id for i in await provider.list()}


async def test_a_provider_without_capacity_fails_over_to_the_next_entry(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    config = fleet(
        """
[providers.full]
type = "fake"
capacity = 0

[providers.spare]
type = "fake"

[pools.dev]
instance_type = "h100-8x"
min_nodes = 2
max_nodes = 4

[[pools.dev.providers]]
provider = "full"
priority = 0

[[pools.dev.providers]]
provider = "spare"
priority = 1
"""
    )
    async with open_fleet(tmp_path / "navarch.db", config) as service:
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        assert {n.provider for n in healthy_nodes(service)} == {"spare"}
        view = await pool(service)
        assert [(b.provider, b.kind) for b in view.blocked] == [("full", "capacity")]
        assert view.blocked[0].until is not None


async def test_instance_records_survive_a_restart(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "navarch.db"
    async with open_fleet(path, fleet(REACTIVE)) as service:
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        before = dict(service.pools.instances.records)
    async with open_fleet(path, fleet(REACTIVE)) as service:
        # Loaded before the first round reconciles them.
        assert set(service.pools.instances.records) >= set(before)
        # The fake provider's machines died with the old process: they are found lost and
        # replaced by new ones.
        await wait_until(
            lambda: (
                len([n for n in healthy_nodes(service) if (n.provider, n.node_id) not in before])
                == 2
            )
        )
        for key in before:
            assert service.pools.instances.records[key].status is InstanceStatus.FAILED


async def test_scale_pool_sets_a_floor_and_queue_depth_is_kept(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_fleet(tmp_path / "navarch.db", fleet(REACTIVE)) as service:
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        response = await rpc(service, m.ScalePoolRequest(name="dev", target=4), ADMIN)
        assert response.pool.manual_target == 4
        await wait_until(lambda: len(healthy_nodes(service)) == 4)
        await trio.sleep(30 * 60)
        assert len(live_nodes(service)) == 4
        queued = await rpc(service, m.ReportQueueDepthRequest(pool="dev", depth=7), ADMIN)
        assert queued.pool.queue_depth == 7
        listed = await rpc(service, m.ListPoolsRequest(), ADMIN)
        assert [p.name for p in listed.pools] == ["dev"]


async def test_replace_terminates_the_node_and_provisions_a_successor(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_fleet(tmp_path / "navarch.db", fleet(REACTIVE)) as service:
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        victim = healthy_nodes(service)[0].node_id
        await service.pools.replace(victim, "XID 79")
        await service.pools.request_replacement(victim, "prefer_same")
        await wait_until(
            lambda: len([n for n in healthy_nodes(service) if n.node_id != victim]) == 2
        )
        await trio.sleep(120)
        assert len(live_nodes(service)) == 2
        node = next(n for n in service.all_nodes() if n.node_id == victim)
        assert node.status is TERMINATED
        assert service.pools.instances.records[("fake", victim)].status is InstanceStatus.TERMINATED


async def test_an_instance_with_the_pool_label_but_no_record_is_adopted(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_fleet(tmp_path / "navarch.db", fleet(REACTIVE)) as service:
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        # As if a control plane had stopped between the provider's answer and its record.
        orphan = await fake(service).provision(
            ProvisionRequest(name="dev", instance_type="h100-8x", pool="dev")
        )
        await wait_until(
            lambda: (
                service.pools.instances.records.get(("fake", orphan.instance_id)) is not None
                and service.pools.instances.records[("fake", orphan.instance_id)].status
                is InstanceStatus.RUNNING
            )
        )
        assert len(await events(service, "instance.adopted")) == 1
        view = await pool(service)
        assert orphan.instance_id in {i.instance_id for i in view.instances}


TWO_PROVIDERS = """
[providers.first]
type = "fake"
capacity = 1

[providers.second]
type = "fake"

[pools.dev]
instance_type = "h100-8x"
min_nodes = 2
max_nodes = 4

[[pools.dev.providers]]
provider = "first"

[[pools.dev.providers]]
provider = "second"
priority = 1
"""


async def test_a_replacement_comes_from_the_same_provider_first(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_fleet(tmp_path / "navarch.db", fleet(TWO_PROVIDERS)) as service:
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        providers = {n.node_id: n.provider for n in healthy_nodes(service)}
        assert sorted(providers.values()) == ["first", "second"]
        on_second = next(node for node, provider in providers.items() if provider == "second")
        on_first = next(node for node, provider in providers.items() if provider == "first")
        # "first" has room again once its node is gone, but "prefer_same" keeps to "second".
        await service.pools.replace(on_second, "bad GPU", "prefer_same")
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        successor = next(n for n in healthy_nodes(service) if n.node_id not in providers)
        assert successor.provider == "second"
        # "any" takes the selector's order. The successor is asked for before the node leaves,
        # so "first" is still full: it is blocked and "second" provides.
        await service.pools.replace(on_first, "bad GPU", "any")
        await wait_until(lambda: len(healthy_nodes(service)) == 2)
        newest = next(
            n for n in healthy_nodes(service) if n.node_id not in {*providers, successor.node_id}
        )
        assert newest.provider == "second"
        view = await pool(service)
        assert [(b.provider, b.kind) for b in view.blocked] == [("first", "capacity")]
