"""The fake provider: instances that exist only in this process, for local fleets and tests.

Each instance it provisions is a simulated machine (`ProviderContext.boot`): a real navarch daemon
over simulated GPUs, registering with the control plane as the node `instance_id`. Terminating the
instance switches the machine off, so its daemon stops at once; rebooting it stops the daemon and
boots the machine again, whose new daemon registers again as the same node.
"""

from __future__ import annotations

import itertools
import random
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import attrs
from attrs import field, frozen

from navarch.plugins import (
    CapacityError,
    Instance,
    InstanceNotFound,
    InstanceState,
    InstanceType,
    Machine,
    ProviderContext,
    ProviderError,
    ProvisionRequest,
    Register,
    SimulatedMachine,
    TransientError,
    hookimpl,
    validators,
)


@frozen(kw_only=True)
class FakeProviderSettings:
    gpu_count: int = field(default=8, validator=validators.between(1, 16))
    gpu_type: str = "NVIDIA H100 80GB HBM3"
    regions: tuple[str, ...] = ("local",)
    provision_delay: timedelta = field(default=timedelta(0), validator=validators.not_negative)
    # Share of provision calls that fail with a transient error.
    failure_rate: float = field(default=0.0, validator=validators.fraction)
    # Most instances alive at once; provisioning beyond it is a capacity error.
    capacity: int | None = None
    # Most spot instances alive at once; asking for spot beyond it is a capacity error.
    spot_capacity: int | None = None
    # Price per hour by instance type, reported through instance_types().
    prices: dict[str, float] = field(factory=dict)
    seed: int | None = None
    # GPU utilization (0-100) that every simulated node reports; the reactive autoscaler's
    # defaults neither grow nor shrink a pool at 50.
    utilization: float = field(default=50.0, validator=validators.percent)
    # The address every instance reports (`Instance.address`), for tests that reach a machine
    # over SSH; empty reports none.
    address: str = ""


class FakeProvider:
    Settings = FakeProviderSettings
    supports_spot = True

    def __init__(
        self,
        settings: FakeProviderSettings,
        *,
        name: str = "fake",
        run_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.name = name
        self._instances: dict[str, Instance] = {}
        # request id -> the instance its first call made, so that a retry makes no second one.
        self._requested: dict[str, str] = {}
        self._ids = itertools.count(1)
        # Instance ids stay unique across control-plane restarts, as a cloud's would.
        self._run = run_id if run_id is not None else secrets.token_hex(2)
        self._random = rng or random.Random(settings.seed)
        self._context: ProviderContext | None = None
        self._machines: dict[str, Machine] = {}
        self.utilization = settings.utilization

    def attach(self, context: ProviderContext) -> None:
        """Boots a simulated machine for every instance provisioned from now on."""
        self._context = context
        self.name = context.name

    @property
    def machines(self) -> Mapping[str, Machine]:
        """The simulated machines of the instances not yet terminated, by instance id."""
        return self._machines

    def now(self) -> datetime:
        return self._context.now() if self._context is not None else datetime.now(UTC)

    def set_load(self, utilization: float) -> None:
        """Sets the GPU utilization (0-100) of every machine, and of the machines made later."""
        self.utilization = utilization
        for machine in self._machines.values():
            machine.set_load(utilization)

    def add_instance(self, instance: Instance, machine: Machine | None = None) -> None:
        """Lists a machine that runs already (the simulator's scenario machines), as if this
        provider had made it; `machine` is switched off when the instance is terminated."""
        self._instances[instance.instance_id] = instance
        if machine is not None:
            self._machines[instance.instance_id] = machine

    def _alive(self, spot: bool | None = None) -> int:
        return sum(
            1
            for i in self._instances.values()
            if i.state in (InstanceState.PROVISIONING, InstanceState.RUNNING)
            and spot in (None, i.spot)
        )

    def preempt(self, instance_id: str) -> None:
        """Takes a machine back as a cloud takes back a spot machine: it switches off, and the
        instance is listed as PREEMPTED until it is terminated."""
        instance = self._instances.get(instance_id)
        if instance is None or instance.state is InstanceState.TERMINATED:
            return
        self._instances[instance_id] = attrs.evolve(instance, state=InstanceState.PREEMPTED)
        machine = self._machines.pop(instance_id, None)
        if machine is not None:
            machine.power_off()

    async def provision(self, request: ProvisionRequest) -> Instance:
        import trio  # imported here so that `navarch --help` stays fast

        s = self.settings
        earlier = self._requested.get(request.request_id) if request.request_id else None
        if earlier is not None:
            await trio.lowlevel.checkpoint()
            return self._instances[earlier]
        if s.capacity is not None and self._alive() >= s.capacity:
            raise CapacityError(f"{self.name}: capacity of {s.capacity} instances reached")
        if request.spot and s.spot_capacity is not None and self._alive(True) >= s.spot_capacity:
            raise CapacityError(
                f"{self.name}: spot capacity of {s.spot_capacity} instances reached"
            )
        if s.failure_rate and self._random.random() < s.failure_rate:
            raise TransientError(f"{self.name}: simulated provisioning failure")
        instance_id = f"{self.name}-{self._run}-{next(self._ids)}"
        instance = Instance(
            instance_id=instance_id,
            provider=self.name,
            instance_type=request.instance_type,
            state=InstanceState.PROVISIONING,
            region=request.region or s.regions[0],
            zone=request.zone,
            pool=request.pool,
            labels=dict(request.labels),
            created_at=self.now(),
            spot=request.spot,
            address=s.address,
        )
        self._instances[instance_id] = instance
        if request.request_id:
            self._requested[request.request_id] = instance_id
        if s.provision_delay:
            await trio.sleep(s.provision_delay.total_seconds())
        current = self._instances[instance_id]
        if current.state is InstanceState.PROVISIONING:
            current = attrs.evolve(current, state=InstanceState.RUNNING)
            self._instances[instance_id] = current
            self._boot(current)
        return current

    def _boot(self, instance: Instance) -> None:
        if self._context is None:
            return
        machine = SimulatedMachine(
            gpu_count=self.settings.gpu_count,
            gpu_type=self.settings.gpu_type,
            utilization=self.utilization,
            seed=f"{self.settings.seed}/{instance.instance_id}",
        )
        try:
            self._machines[instance.instance_id] = self._context.boot(instance, machine)
        except ProviderError:
            # Nothing runs simulated machines here: the instance exists, and never registers.
            pass

    async def terminate(self, instance_id: str) -> None:
        import trio

        await trio.lowlevel.checkpoint()
        instance = self._instances.get(instance_id)
        if instance is None:
            raise InstanceNotFound(f"{self.name}: no instance {instance_id}")
        self._instances[instance_id] = attrs.evolve(instance, state=InstanceState.TERMINATED)
        machine = self._machines.pop(instance_id, None)
        if machine is not None:
            machine.power_off()

    async def reboot(self, instance_id: str) -> None:
        """Switches the instance's machine off and boots it again with fresh GPUs."""
        import trio

        await trio.lowlevel.checkpoint()
        instance = self._instances.get(instance_id)
        if instance is None or instance.state not in (
            InstanceState.PROVISIONING,
            InstanceState.RUNNING,
        ):
            raise InstanceNotFound(f"{self.name}: no instance {instance_id} to reboot")
        machine = self._machines.pop(instance_id, None)
        if machine is not None:
            machine.power_off()
            self._boot(instance)

    async def list(self) -> Sequence[Instance]:
        return [i for i in self._instances.values() if i.state is not InstanceState.TERMINATED]

    async def instance_types(self) -> Sequence[InstanceType]:
        free = self.settings.capacity is None or self._alive() < self.settings.capacity
        names = sorted(self.settings.prices) or ["fake-8x"]
        return [
            InstanceType(
                name=name,
                gpu_count=self.settings.gpu_count,
                gpu_type=self.settings.gpu_type,
                price_per_hour=self.settings.prices.get(name),
                available_regions=self.settings.regions if free else (),
            )
            for name in names
        ]


@hookimpl
def navarch_providers(register: Register) -> None:
    register("fake", FakeProvider)
