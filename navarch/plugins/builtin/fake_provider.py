"""The fake provider: instances that exist only in this process, for local fleets and tests.

Attached to a control plane (`attach`, which the pool manager calls), each instance it
provisions runs a real `navarch daemon` with simulated GPUs as a trio task in the control plane,
talking to the service in process as the node `instance_id`. Terminating the instance stops its
daemon, as switching off a machine would.
"""

from __future__ import annotations

import itertools
import logging
import random
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
from attrs import field, frozen

from navarch.config import ConfigValueError
from navarch.plugins import hookimpl
from navarch.providers import (
    CapacityError,
    Instance,
    InstanceNotFound,
    InstanceState,
    InstanceType,
    ProvisionRequest,
    TransientError,
)

log = logging.getLogger("navarch.providers.fake")


def _fraction(_inst: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0 <= value <= 1:
        raise ConfigValueError(f"{attribute.name}: expected a number from 0 to 1, got {value!r}")


@frozen(kw_only=True)
class FakeProviderSettings:
    gpu_count: int = field(default=8)
    gpu_type: str = "NVIDIA H100 80GB HBM3"
    regions: tuple[str, ...] = ("local",)
    provision_delay: timedelta = timedelta(0)
    # Share of provision calls that fail with a transient error.
    failure_rate: float = field(default=0.0, validator=_fraction)
    # Most instances alive at once; provisioning beyond it is a capacity error.
    capacity: int | None = None
    # Price per hour by instance type, reported through instance_types().
    prices: dict[str, float] = field(factory=dict)
    seed: int | None = None
    # GPU utilization (0-100) that every simulated node reports; the reactive autoscaler's
    # defaults neither grow nor shrink a pool at 50.
    utilization: float = field(default=50.0)

    @utilization.validator
    def _load(self, _attribute: attrs.Attribute, value: float) -> None:
        if not 0 <= value <= 100:
            raise ConfigValueError(f"utilization: expected a number from 0 to 100, got {value:g}")

    @gpu_count.validator
    def _gpus(self, _attribute: attrs.Attribute, value: int) -> None:
        if not 1 <= value <= 16:
            raise ConfigValueError(f"gpu_count: expected 1 to 16, got {value}")


class FakeProvider:
    Settings = FakeProviderSettings

    def __init__(self, settings: FakeProviderSettings, name: str = "fake") -> None:
        self.settings = settings
        self.name = name
        self._instances: dict[str, Instance] = {}
        self._ids = itertools.count(1)
        # Instance ids stay unique across control-plane restarts, as a cloud's would.
        self._run = secrets.token_hex(2)
        self._random = random.Random(settings.seed)
        self._service: Any = None
        self._nursery: Any = None
        # instance id -> its daemon and simulated GPUs, while attached.
        self.daemons: dict[str, Any] = {}
        self.gpus: dict[str, Any] = {}
        self.utilization = settings.utilization
        self._now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def set_load(self, utilization: float) -> None:
        """Sets the GPU utilization (0-100) of every node, and of the nodes provisioned later."""
        self.utilization = utilization
        for gpus in self.gpus.values():
            gpus.set_load(utilization)

    def attach(self, *, service: Any, nursery: Any, name: str) -> None:
        """Runs a daemon for each instance from now on, in `nursery`, against `service`.

        `name` is the `[providers.NAME]` table, which the nodes report as their provider.
        """
        self._service = service
        self._nursery = nursery
        self.name = name
        self._now = service.now

    def _alive(self) -> int:
        return sum(
            1
            for i in self._instances.values()
            if i.state in (InstanceState.PROVISIONING, InstanceState.RUNNING)
        )

    async def provision(self, request: ProvisionRequest) -> Instance:
        s = self.settings
        if s.capacity is not None and self._alive() >= s.capacity:
            raise CapacityError(f"{self.name}: capacity of {s.capacity} instances reached")
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
            created_at=self._now(),
        )
        self._instances[instance_id] = instance
        if s.provision_delay:
            import trio  # imported here so that `navarch --help` stays fast

            await trio.sleep(s.provision_delay.total_seconds())
        current = self._instances[instance_id]
        if current.state is InstanceState.PROVISIONING:
            current = attrs.evolve(current, state=InstanceState.RUNNING)
            self._instances[instance_id] = current
            if self._nursery is not None:
                self._start_daemon(current)
        return current

    def _start_daemon(self, instance: Instance) -> None:
        from navarch.api.client import InProcessClient
        from navarch.controlplane import Caller
        from navarch.daemon import Daemon, DaemonConfig, SimulatedGpus

        s = self.settings
        gpus = SimulatedGpus(s.gpu_count, seed=instance.instance_id, name=s.gpu_type)
        gpus.set_load(self.utilization)
        config = DaemonConfig(
            node_id=instance.instance_id,
            pool=instance.pool,
            provider=self.name,
            region=instance.region,
            zone=instance.zone,
            instance_type=instance.instance_type,
            labels=instance.labels,
        )
        daemon = Daemon(
            InProcessClient(self._service, Caller.node(instance.instance_id)),
            gpus,
            config,
            rng=random.Random(f"{s.seed}/{instance.instance_id}"),
        )
        self.daemons[instance.instance_id] = daemon
        self.gpus[instance.instance_id] = gpus
        self._nursery.start_soon(self._run_daemon, daemon)

    @staticmethod
    async def _run_daemon(daemon: Any) -> None:
        from navarch.daemon import DaemonError

        try:
            await daemon.run()
        except DaemonError as exc:
            # One refused node must not take the control plane down with it.
            log.warning("fake node %s stopped: %s", daemon.node_id, exc)

    async def terminate(self, instance_id: str) -> None:
        instance = self._instances.get(instance_id)
        if instance is None:
            raise InstanceNotFound(f"{self.name}: no instance {instance_id}")
        self._instances[instance_id] = attrs.evolve(instance, state=InstanceState.TERMINATED)
        daemon = self.daemons.pop(instance_id, None)
        self.gpus.pop(instance_id, None)
        if daemon is not None:
            daemon.stop()

    async def list(self) -> list[Instance]:
        return [i for i in self._instances.values() if i.state is not InstanceState.TERMINATED]

    async def instance_types(self) -> list[InstanceType]:
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
def navarch_providers(register: Any) -> None:
    register("fake", FakeProvider)
