"""One pool's memory between scaling rounds, owned by the pool manager."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

import trio

from navarch.config import PoolConfig
from navarch.plugins import (
    Autoscaler,
    Candidate,
    MetricsSource,
    ProvisionRequest,
    ScalingState,
    Selector,
)
from navarch.pools.behavior import Decision, ScalingBehavior
from navarch.pools.zone_balance import Place


class PoolState:
    """One pool: its plugins, its scaling behavior and what the last rounds decided."""

    def __init__(self, name: str, config: PoolConfig) -> None:
        self.name = name
        self.config = config
        self.autoscaler: Autoscaler | None = (
            config.autoscaler.create(Autoscaler) if config.autoscaler is not None else None
        )
        self.selector: Selector = config.selector.create(Selector)
        self.metrics: MetricsSource | None = (
            config.metrics.create(MetricsSource) if config.metrics is not None else None
        )
        # Why the last reading of the metrics source failed; empty once it answers again.
        self.metrics_error = ""
        self.behavior = ScalingBehavior(config.scaling)
        # Provision calls under way that have no instance id yet.
        self.pending = 0
        # The places those calls are trying, so that the nodes of one round spread over zones.
        self.claims: Counter[Place] = Counter()
        # trio's time since when the pool has been idle (scale to zero); None while it is busy.
        self.idle_since: float | None = None
        self.history: list[float] = []
        self.queue_depth: int | None = None
        self.queue_depth_at: datetime | None = None
        # trio's time at queue_depth_at, for the depth's age (metrics_max_age).
        self.queue_depth_time: float | None = None
        self.manual_target: int | None = None
        self.target = config.min_nodes
        self.decision: Decision | None = None
        self.decision_at: datetime | None = None
        self.last_reason = ""
        # (reason shape, previous, target) of the last pool.scaled event.
        self.last_scaled: tuple[str, int, int] | None = None
        self.last_failure = ""
        # Spot entries (by index): capacity errors in a row, and until when (trio time) the entry
        # asks for on-demand machines instead.
        self.spot_failures: dict[int, int] = {}
        self.on_demand_until: dict[int, float] = {}
        self.state: ScalingState | None = None
        self.wake = trio.Event()

    @property
    def scale_down_reason(self) -> str:
        """The status reason of the pool's scale-down victims."""
        return f"pool {self.name} scale down"


class PreferProvider:
    """A selector that puts one provider's candidates first, or offers only those."""

    def __init__(self, inner: Selector, provider: str, only: bool) -> None:
        self._inner = inner
        self._provider = provider
        self._only = only

    def order(self, candidates: Sequence[Candidate], request: ProvisionRequest) -> list[Candidate]:
        ordered = self._inner.order(candidates, request)
        same = [c for c in ordered if c.provider == self._provider]
        return same if self._only else same + [c for c in ordered if c.provider != self._provider]
