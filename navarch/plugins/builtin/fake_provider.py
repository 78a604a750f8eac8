"""The fake provider: instances that exist only in this process, for local fleets and tests."""

from __future__ import annotations

import itertools
import random
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
        self._random = random.Random(settings.seed)

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
        instance_id = f"{self.name}-{next(self._ids)}"
        instance = Instance(
            instance_id=instance_id,
            provider=self.name,
            instance_type=request.instance_type,
            state=InstanceState.PROVISIONING,
            region=request.region or s.regions[0],
            zone=request.zone,
            pool=request.pool,
            labels=dict(request.labels),
            created_at=datetime.now(UTC),
        )
        self._instances[instance_id] = instance
        if s.provision_delay:
            import trio  # imported here so that `navarch --help` stays fast

            await trio.sleep(s.provision_delay.total_seconds())
        current = self._instances[instance_id]
        if current.state is InstanceState.PROVISIONING:
            current = attrs.evolve(current, state=InstanceState.RUNNING)
            self._instances[instance_id] = current
        return current

    async def terminate(self, instance_id: str) -> None:
        instance = self._instances.get(instance_id)
        if instance is None:
            raise InstanceNotFound(f"{self.name}: no instance {instance_id}")
        self._instances[instance_id] = attrs.evolve(instance, state=InstanceState.TERMINATED)

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
