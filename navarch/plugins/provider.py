"""The provider contract: what the core asks of a provider plugin, its values and its errors.

A provider gets machines from a cloud. The pool manager builds one object per `[providers.NAME]`
table and calls it from trio tasks:

- `provision(request) -> Instance`, `terminate(instance_id)` and `list() -> [Instance]`, always;
- `instance_types() -> [InstanceType]` where the provider has a catalog (prices and capacity make
  the `cost` and `availability` selectors work);
- `instance_type_for(name) -> str` where the provider maps navarch's abstract instance types
  (`h100-8x`, see `ABSTRACT_INSTANCE_TYPES`) to its cloud's own names; the core names no cloud's
  instance types;
- `check() -> [str]` where the provider can tell, without calling its cloud, that it cannot work
  (a credential missing): `navarch config check` prints each problem and the control plane logs
  them at start;
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
    # The cloud took the machine back (a spot or preemptible instance, or a maintenance event
    # that stops it). `list()` reports such an instance until navarch terminates it, so that
    # reconcile replaces its node as preempted rather than as a machine that went missing.
    PREEMPTED = "preempted"


@frozen(kw_only=True)
class ProvisionRequest:
    """One machine a pool asks for."""

    # A name for the machine, for people (the pool's name).
    name: str
    # The provider's own name for the instance type (the pool's abstract type, mapped by the
    # provider's `instance_type_for`).
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
    # A spot (preemptible) machine instead of an on-demand one. The core asks for spot only of a
    # provider class whose `supports_spot` is true.
    spot: bool = False
    # A cloud-init document the machine runs at first boot (it installs and starts the navarch
    # daemon); empty when the control plane has none to hand. Never logged.
    user_data: str = field(default="", repr=False)


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
    spot: bool = False
    # Where navarch can reach the machine over SSH (its public address, or the private one where
    # the control plane runs inside the network); empty while the cloud has not assigned one.
    address: str = ""
    # The machine's SSH host keys as the cloud reports them ("ssh-ed25519 AAAA..."), so setup
    # over SSH can check them; empty means navarch trusts the key it sees first and records it.
    host_keys: tuple[str, ...] = ()


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
    """The account's quota is exhausted; the core blocks this provider's region for longer, or the
    whole provider when `all_regions` says the quota spans every region (GCP's
    `GPUS_ALL_REGIONS`)."""

    def __init__(self, message: str = "", *, all_regions: bool = False) -> None:
        super().__init__(message)
        self.all_regions = all_regions


class AuthError(ProviderError):
    """The credentials were refused; the core blocks the whole provider until they change."""


class TransientError(ProviderError):
    """A passing failure (timeout, 5xx); the core retries with backoff."""


class InstanceNotFound(ProviderError):
    """The provider does not know the instance (already gone)."""


class Provider(Protocol):
    """The methods every provider has.

    A provider class may set `supports_spot = True` when its cloud sells spot (preemptible)
    machines; `navarch config check` refuses `spot = true` on a pool entry of any other.
    """

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


@runtime_checkable
class InstanceTypeNames(Protocol):
    """A provider that maps navarch's abstract instance types to its cloud's own names."""

    def instance_type_for(self, name: str) -> str:
        """The cloud's own name for a pool's `instance_type`: an abstract name (`h100-8x`) that
        the cloud offers mapped to the cloud's own type, any other name returned as it is."""
        ...


@runtime_checkable
class RebootingProvider(Protocol):
    """A provider that can reboot a machine it made (remediation's `reboot` action asks it before
    it falls back to the daemon's reboot command)."""

    async def reboot(self, instance_id: str) -> None:
        """Restarts the machine, keeping its disk and identity; returns once the cloud accepted
        the request. Raises `InstanceNotFound` for one the provider does not know, and other
        `ProviderError`s as `provision` does."""
        ...


@runtime_checkable
class CheckedProvider(Protocol):
    """A provider that can tell, without calling its cloud, what keeps it from working."""

    def check(self) -> Sequence[str]:
        """Problems, each one line that says what to do ("no Lambda API key: set
        LAMBDA_API_KEY or api_key_file"); empty when nothing is wrong. Never shows a secret."""
        ...


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
