"""The provider contract: what the core asks of a provider plugin, and the errors it may raise.

A provider object has async `provision(request) -> Instance`, `terminate(instance_id)`,
`list() -> list[Instance]` and, optionally, `instance_types() -> list[InstanceType]`.
"""

from __future__ import annotations

import enum
from datetime import datetime

from attrs import field, frozen


class InstanceState(enum.Enum):
    PROVISIONING = "provisioning"
    RUNNING = "running"
    TERMINATING = "terminating"
    TERMINATED = "terminated"
    FAILED = "failed"


@frozen(kw_only=True)
class ProvisionRequest:
    name: str
    instance_type: str
    region: str = ""
    zone: str = ""
    pool: str = ""
    labels: dict[str, str] = field(factory=dict)


@frozen(kw_only=True)
class Instance:
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
    name: str
    gpu_count: int
    gpu_type: str
    price_per_hour: float | None = None
    # Regions that report free capacity for this type right now.
    available_regions: tuple[str, ...] = ()


class ProviderError(Exception):
    """A provider refused or failed a request. Subclasses say how the core should react."""


class CapacityError(ProviderError):
    """No capacity for this type here now; the core fails over to the next entry at once."""


class QuotaError(ProviderError):
    """The account's quota is exhausted; the core blocks this provider for longer."""


class AuthError(ProviderError):
    """The credentials were refused; the core blocks this provider until they change."""


class TransientError(ProviderError):
    """A passing failure (timeout, 5xx); the core retries with backoff."""


class InstanceNotFound(ProviderError):
    """The provider does not know the instance (already gone)."""
