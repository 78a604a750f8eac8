"""The providers of a simulated fleet: every provider a scenario names is a `SimProvider`, the
fake provider seeded by the run or a plugin's own provider, whose instances are the fleet's
`SimNode`s. The scenario's own machines are listed by their (fake) provider as instances, so a pool
adopts them as it would machines a restarted control plane had made, and remediation terminates,
reboots and replaces them through the provider like any other. A provider outage refuses
provisioning.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio

from navarch.plugins import (
    AttachableProvider,
    CheckedProvider,
    Instance,
    InstanceNotFound,
    InstanceState,
    InstanceType,
    InstanceTypeNames,
    PluginTable,
    Provider,
    ProviderCatalog,
    ProviderContext,
    ProvisionRequest,
    SimulatedMachine,
    TransientError,
)
from navarch.plugins.builtin.fake_provider import FakeProvider, FakeProviderSettings
from navarch.sim.scenario import NodeSpec

if TYPE_CHECKING:
    from navarch.sim.fleet import Fleet, SimNode


class SimMachine:
    """A fleet machine as its provider sees it: switching it off ends it for good."""

    def __init__(self, fleet: Fleet, node: SimNode) -> None:
        self._fleet = fleet
        self._node = node

    def set_load(self, utilization: float) -> None:
        self._node.set_load(utilization)

    def power_off(self) -> None:
        self._fleet.terminated(self._node.id)


class SimProvider:
    """A provider of the simulated world: its machines are the fleet's `SimNode`s, and it refuses
    to provision during an outage.

    A `fake` table is the fake provider, seeded by the run. Any other type is that plugin's own
    provider, as a user installed it: what it provisions is booted as a simulated machine (with
    the GPUs its catalog names for the instance type), and what it terminates is switched off.
    """

    def __init__(self, name: str, table: PluginTable, fleet: Fleet) -> None:
        self.name = name
        self._fleet = fleet
        self.inner: Provider
        if table.type == "fake":
            self.settings: FakeProviderSettings | None = table.settings
            # Instance ids and simulated provisioning failures follow the run's seed, so that
            # two runs of one seed are the same.
            self.inner = FakeProvider(
                table.settings,
                name=name,
                run_id="sim",
                rng=random.Random(f"{fleet.seed}/provider/{name}"),
            )
        else:
            self.settings = None
            self.inner = table.create(Provider)
        self.down_reason = ""

    def attach(self, context: ProviderContext) -> None:
        if isinstance(self.inner, AttachableProvider):
            self.inner.attach(context)

    def add_machine(self, spec: NodeSpec, node: SimNode) -> None:
        """Lists one of the scenario's machines as this provider's running instance."""
        assert isinstance(self.inner, FakeProvider), "scenario machines need a fake provider"
        instance = Instance(
            instance_id=spec.id,
            provider=self.name,
            instance_type=spec.instance_type,
            state=InstanceState.RUNNING,
            region=spec.region,
            zone=spec.zone,
            pool=spec.pool,
            labels=dict(spec.labels),
            created_at=self._fleet.wall_clock(),
        )
        self.inner.add_instance(instance, SimMachine(self._fleet, node))

    async def provision(self, request: ProvisionRequest) -> Instance:
        if self.down_reason:
            await trio.lowlevel.checkpoint()
            raise TransientError(f"{self.name}: {self.down_reason}")
        instance = await self.inner.provision(request)
        if (
            not isinstance(self.inner, FakeProvider)
            and instance.state in (InstanceState.PROVISIONING, InstanceState.RUNNING)
            and instance.instance_id not in self._fleet.nodes
        ):
            # A plugin's machine: it boots as its cloud would boot it.
            self._fleet.boot(self.name, instance, await self._machine(instance.instance_type))
        return instance

    async def _machine(self, instance_type: str) -> SimulatedMachine:
        gpus, kind = 8, "NVIDIA H100 80GB HBM3"
        if isinstance(self.inner, ProviderCatalog):
            for item in await self.inner.instance_types():
                if item.name == instance_type:
                    gpus, kind = item.gpu_count, item.gpu_type
        return SimulatedMachine(
            gpu_count=gpus, gpu_type=kind, utilization=self._fleet.utilization, seed=self.name
        )

    def instance_type_for(self, name: str) -> str:
        if isinstance(self.inner, InstanceTypeNames):
            return self.inner.instance_type_for(name)
        return name

    def check(self) -> Sequence[str]:
        return list(self.inner.check()) if isinstance(self.inner, CheckedProvider) else []

    def preempt(self, instance_id: str) -> bool:
        """Takes the machine back as the cloud would; False where the provider cannot say so
        (a plugin's own provider: its machine only goes away)."""
        if isinstance(self.inner, FakeProvider):
            self.inner.preempt(instance_id)
            return True
        return False

    async def terminate(self, instance_id: str) -> None:
        await self.inner.terminate(instance_id)
        if not isinstance(self.inner, FakeProvider):
            self._fleet.terminated(instance_id)

    async def reboot(self, instance_id: str) -> None:
        """Reboots the machine as its cloud would: it goes down and comes back as itself."""
        if self.down_reason:
            await trio.lowlevel.checkpoint()
            raise TransientError(f"{self.name}: {self.down_reason}")
        node = self._fleet.nodes.get(instance_id)
        listed = {i.instance_id for i in await self.inner.list()}
        if node is None or node.terminated or instance_id not in listed:
            raise InstanceNotFound(instance_id)
        node.restart()

    async def list(self) -> Sequence[Instance]:
        return await self.inner.list()

    async def instance_types(self) -> Sequence[InstanceType]:
        if isinstance(self.inner, ProviderCatalog):
            return await self.inner.instance_types()
        return []
