"""What an autoscaler sees and what it answers.

Autoscalers are pure: `recommend(state) -> Recommendation`, synchronous, with no clock of their
own (time arrives in the state). The core clamps, stabilizes and rate-limits what they return.
"""

from __future__ import annotations

from datetime import datetime

from attrs import frozen


@frozen(kw_only=True)
class ScalingState:
    pool: str
    current_nodes: int
    min_nodes: int
    max_nodes: int
    healthy_nodes: int = 0
    in_flight: int = 0
    # Mean GPU utilization across the pool's nodes, 0-100; None when no node reported any.
    utilization: float | None = None
    queue_depth: int | None = None
    # Past utilization samples, oldest first.
    history: tuple[float, ...] = ()
    now: datetime | None = None


@frozen(kw_only=True)
class Recommendation:
    target: int
    reason: str
