"""The provider contract: what the core asks of a provider plugin, its values and its errors.

A provider gets machines from a cloud. The pool manager builds one object per `[providers.NAME]`
table and calls it from trio tasks:

- `provision(request) -> Instance`, `terminate(instance_id)` and `list() -> [Instance]`, always;
- `instance_types() -> [InstanceType]` where the provider has a catalog (prices and capacity make
  the `cost` and `availability` selectors work);
- `attach(context)` where the provider needs the control plane: the manager calls it once, before
  the first scaling round, with a narrow `ProviderContext` through which the provider starts tasks
  of its own (cancelled at shutdown) and boots simulated machines.

Errors say how the core should react, by kind: see `ProviderError` and its subclasses.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from attrs import field, frozen

# The label on every instance a pool provisions, naming the pool: `list()` reports it, so that
# the pool finds its instances again after a restart.
POOL_LABEL = "navarch.io/pool"


class InstanceState(enum.Enum):
    PROVISIONING = "provisioning"
    RUNNING = "running"
    TERMINATING = "terminating"
    TERMINATED = "terminated"
    FAILED = "failed"


@frozen(kw_only=True)
class ProvisionRequest:
    """One machine a pool asks for."""

    # A name for the machine, for people (the pool's name).
    name: str
    # The provider's own name for the instance type (the pool's abstract type, mapped).
    instance_type: str
    region: str = ""
    zone: str = ""
    pool: str = ""
    # Tags or labels to put on the machine; they include `POOL_LABEL`, so that `list()` can find
    # the machines navarch made.
    labels: dict[str, str] = field(factory=dict)
    # Unique to this request and the same on its retries: a provider asked twice with one
    # request id returns the machine of the first call instead of making a second one.
    request_id: str = ""


@frozen(kw_only=True)
class Instance:
    """A machine as its provider reports it."""

    instance_id: str
    provider: str
    instance_type: str
    state: InstanceState
    region: str = ""
    zone: str = ""
    pool: str = ""
    labels: dict[str, str] = field(factory=dict)
    created_at: datetime | None = None


@frozen(kw_only=True)
class InstanceType:
    """One entry of a provider's catalog."""

    name: str
    gpu_count: int
    gpu_type: str
    price_per_hour: float | None = None
    # Regions that report free capacity for this type right now.
    available_regions: tuple[str, ...] = ()


class ProviderError(Exception):
    """A provider refused or failed a request. Subclasses say how the core should react; any
    other exception blocks the candidate that raised it for a short while."""


class CapacityError(ProviderError):
    """No capacity for this type here now; the core fails over to the next candidate at once."""


class QuotaError(ProviderError):
    """The account's quota is exhausted; the core blocks this provider's region for longer."""


class AuthError(ProviderError):
    """The credentials were refused; the core blocks the whole provider until they change."""


class TransientError(ProviderError):
    """A passing failure (timeout, 5xx); the core retries with backoff."""


class InstanceNotFound(ProviderError):
    """The provider does not know the instance (already gone)."""


class Provider(Protocol):
    """The methods every provider has."""

    async def provision(self, request: ProvisionRequest) -> Instance:
        """Makes one machine; returns once the provider has accepted it (RUNNING or
        PROVISIONING). Raises a `ProviderError` subclass to say why it cannot."""
        ...

    async def terminate(self, instance_id: str) -> None:
        """Ends the machine; raises `InstanceNotFound` for one the provider does not know."""
        ...

    async def list(self) -> Sequence[Instance]:
        """The machines that exist now (not terminated), including those navarch made and
        forgot: the pool manager adopts a listed machine whose `pool` it knows."""
        ...


@runtime_checkable
class ProviderCatalog(Protocol):
    """A provider that can say what it offers."""

    async def instance_types(self) -> Sequence[InstanceType]: ...


@frozen(kw_only=True)
class SimulatedMachine:
    """A machine whose GPUs are simulated, with its daemon running in this process."""

    gpu_count: int
    gpu_type: str
    # GPU utilization, 0-100, that the simulated GPUs report.
    utilization: float
    # Makes the simulated GPUs' readings repeatable.
    seed: str


class Machine(Protocol):
    """A simulated machine started through `ProviderContext.boot`."""

    def set_load(self, utilization: float) -> None:
        """Sets the GPU utilization (0-100) the machine reports from now on."""

    def power_off(self) -> None:
        """Stops the machine's daemon at once, as switching the machine off would."""


class ProviderContext(Protocol):
    """What a provider's `attach` gets: a narrow view of the control plane it serves."""

    @property
    def name(self) -> str:
        """The `[providers.NAME]` table; nodes of this provider report it as their provider."""
        ...

    def now(self) -> datetime:
        """The control plane's wall clock (virtual time in the simulator)."""
        ...

    def boot(self, instance: Instance, machine: SimulatedMachine) -> Machine:
        """Starts a simulated machine for `instance`: a real navarch daemon over simulated GPUs,
        registering as the node `instance.instance_id`. For providers whose machines exist only
        in this process (the fake provider); raises `ProviderError` where nothing can run them."""
        ...

    def start_soon(self, task: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Runs `task(*args)` as a task of the control plane until it returns or shutdown; an
        exception it raises is logged and ends only that task."""
        ...


@runtime_checkable
class AttachableProvider(Protocol):
    """A provider that needs the control plane: tasks of its own, or simulated machines."""

    def attach(self, context: ProviderContext) -> None:
        """Called once, before the first scaling round; keep `context` for later calls."""
        ...
