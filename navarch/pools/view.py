"""What a pool looks like from outside: its size, target, last decision, blocks and instances.

The API maps these to its wire `Pool`; `navarch pool get` and the dashboard read them.
"""

from __future__ import annotations

from datetime import datetime

from attrs import frozen

from navarch.model import Bootstrap, Preflight


@frozen(kw_only=True)
class ProviderBlockView:
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
    # Only spot machines (a spot capacity error); on-demand ones are still tried.
    spot: bool = False


@frozen(kw_only=True)
class InstanceView:
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
    # How far installing the daemon got; None for an instance bootstrapped by nothing.
    bootstrap: Bootstrap | None = None
    # How far its node's preflight diagnostics got; None in a pool without preflight.
    preflight: Preflight | None = None


@frozen(kw_only=True)
class PoolView:
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
    blocked: tuple[ProviderBlockView, ...] = ()
    # Filled when the pool is described in detail (GetPool).
    instances: tuple[InstanceView, ...] = ()
