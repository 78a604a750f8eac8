"""Wire models of pools: their instances, how far each instance's bootstrap and preflight got,
provider blocks, and the scaling history.

Part of the wire API that `navarch.api.wire` gathers; read its docstring for the conventions.
"""

from __future__ import annotations

import enum
from datetime import datetime

from attrs import frozen


@frozen(kw_only=True)
class ProviderBlock:
    """A part of a provider that a pool does not try until `until`, after it failed."""

    provider: str
    # "capacity", "quota", "auth" or "error".
    kind: str
    reason: str
    # Empty means every region (zone, instance type) of the provider.
    region: str = ""
    zone: str = ""
    instance_type: str = ""
    until: datetime | None = None
    # Only spot machines are blocked (a spot capacity error); on-demand ones are still tried.
    spot: bool = False


class BootstrapState(enum.Enum):
    BOOTSTRAP_STATE_PENDING = "BOOTSTRAP_STATE_PENDING"
    BOOTSTRAP_STATE_RUNNING = "BOOTSTRAP_STATE_RUNNING"
    BOOTSTRAP_STATE_SUCCEEDED = "BOOTSTRAP_STATE_SUCCEEDED"
    BOOTSTRAP_STATE_FAILED = "BOOTSTRAP_STATE_FAILED"


@frozen(kw_only=True)
class InstanceBootstrap:
    """How far installing navarch's daemon on an instance got."""

    # "cloud-init" or "ssh".
    method: str
    state: BootstrapState
    detail: str = ""
    # The last lines of the bootstrap's output.
    log_tail: str = ""
    started_at: datetime | None = None
    updated_at: datetime | None = None


class PreflightState(enum.Enum):
    PREFLIGHT_STATE_PENDING = "PREFLIGHT_STATE_PENDING"
    PREFLIGHT_STATE_RUNNING = "PREFLIGHT_STATE_RUNNING"
    PREFLIGHT_STATE_PASSED = "PREFLIGHT_STATE_PASSED"
    PREFLIGHT_STATE_FAILED = "PREFLIGHT_STATE_FAILED"


@frozen(kw_only=True)
class InstancePreflight:
    """How far the diagnostics that an instance's node runs before it takes work got."""

    state: PreflightState
    level: int = 1
    # The run_diagnostic command that carries the diagnostics.
    command_id: str = ""
    detail: str = ""
    started_at: datetime | None = None
    updated_at: datetime | None = None


@frozen(kw_only=True)
class GetBootstrapIdentityRequest:
    """Asked by a new machine with its one-time bootstrap token: which instance it is."""


@frozen(kw_only=True)
class GetBootstrapIdentityResponse:
    node_id: str
    pool: str = ""
    provider: str = ""
    region: str = ""
    zone: str = ""
    instance_type: str = ""


@frozen(kw_only=True)
class ReportBootstrapRequest:
    """A new machine's bootstrap script reports its progress (RUNNING) or its failure."""

    state: BootstrapState
    detail: str = ""
    log_tail: str = ""


@frozen(kw_only=True)
class ReportBootstrapResponse:
    pass


@frozen(kw_only=True)
class PoolInstance:
    """An instance the pool asked a provider for and that is not yet gone, or one of the last
    whose bootstrap failed."""

    instance_id: str
    provider: str
    # "provisioning", "registering", "running", "terminating" or "failed".
    status: str
    region: str = ""
    zone: str = ""
    instance_type: str = ""
    reason: str = ""
    created_at: datetime | None = None
    address: str = ""
    bootstrap: InstanceBootstrap | None = None
    preflight: InstancePreflight | None = None


@frozen(kw_only=True)
class PoolPoint:
    """The pool at one moment of its history."""

    time: datetime
    size: int = 0
    target: int = 0
    min_nodes: int = 0
    max_nodes: int = 0
    in_flight: int = 0


@frozen(kw_only=True)
class ScalingDecision:
    """A scaling round that changed the pool's target or the kind of reason for it."""

    time: datetime
    # The target before the round, and after it.
    previous: int = 0
    target: int = 0
    # What the autoscaler asked for before the core's rules; None for a pool without one.
    recommended: int | None = None
    reason: str = ""
    autoscaler: str = ""


@frozen(kw_only=True)
class Pool:
    name: str
    instance_type: str
    min_nodes: int
    max_nodes: int
    # Nodes that count toward the pool's size: registered, not draining or terminated.
    size: int = 0
    # What the last scaling round decided the pool should have, counting instances in flight.
    target: int = 0
    # Instances asked of a provider that have not registered as nodes yet.
    in_flight: int = 0
    healthy: int = 0
    utilization: float | None = None
    queue_depth: int | None = None
    queue_depth_at: datetime | None = None
    # The floor set by ScalePool; the autoscaler never takes the pool below it.
    manual_target: int | None = None
    autoscaler: str = ""
    last_decision_at: datetime | None = None
    last_decision: str = ""
    blocked: tuple[ProviderBlock, ...] = ()
    # Filled by GetPool only.
    instances: tuple[PoolInstance, ...] = ()
    # Filled by GetPool only: a point every 15 s over the last 6 h, oldest first.
    history: tuple[PoolPoint, ...] = ()
    # Filled by GetPool only: the last 50 decisions, newest first.
    decisions: tuple[ScalingDecision, ...] = ()


@frozen(kw_only=True)
class ListPoolsRequest:
    pass


@frozen(kw_only=True)
class ListPoolsResponse:
    pools: tuple[Pool, ...] = ()


@frozen(kw_only=True)
class GetPoolRequest:
    name: str


@frozen(kw_only=True)
class GetPoolResponse:
    pool: Pool


@frozen(kw_only=True)
class ScalePoolRequest:
    name: str
    # From min_nodes to max_nodes; the pool holds at least this many nodes from now on.
    target: int
    reason: str = ""


@frozen(kw_only=True)
class ScalePoolResponse:
    pool: Pool


@frozen(kw_only=True)
class ReportQueueDepthRequest:
    pool: str
    # Jobs waiting for or running on the pool, as the scheduler counts them.
    depth: int


@frozen(kw_only=True)
class ReportQueueDepthResponse:
    pool: Pool
