"""The autoscaler contract: what an autoscaler sees and what it answers.

Autoscalers are pure: `recommend(state) -> Recommendation`, synchronous, with no clock of their
own (time arrives in the state). The core clamps, stabilizes and rate-limits what they return, the
same way for every autoscaler (navarch's pool scaling behavior).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from attrs import frozen


@frozen(kw_only=True)
class ScalingState:
    pool: str
    # Every node the pool has, counting instances still being provisioned, so that an autoscaler
    # that answers "current + 1" does not add another node for each round a new one boots.
    current_nodes: int
    min_nodes: int
    max_nodes: int
    # Active nodes whose hardware is not judged unhealthy.
    healthy_nodes: int = 0
    # Instances asked of a provider that have not registered as nodes yet (part of current_nodes).
    in_flight: int = 0
    # Mean GPU utilization, 0-100, over the registered nodes (current_nodes - in_flight) that
    # reported one; None when no node reported any.
    utilization: float | None = None
    # Each registered node's GPU utilization, None for a node that has sent no metrics yet, so
    # that an autoscaler can tell a silent node from an idle one (the HPA's missing pods). Empty
    # when the caller gives no per-node readings: then every registered node counts as reporting
    # `utilization`.
    readings: tuple[float | None, ...] = ()
    # Jobs waiting for or running on the pool, as the queue source counts them; None: no source.
    queue_depth: int | None = None
    # Utilization of recent scaling rounds, one sample per round, oldest first, ending with this
    # round's `utilization` when there is one.
    history: tuple[float, ...] = ()
    # Wall-clock time with a time zone, for autoscalers that follow the calendar.
    now: datetime | None = None

    @property
    def registered_nodes(self) -> int:
        """Nodes that run the daemon: the ones `utilization` and `readings` describe."""
        return max(self.current_nodes - self.in_flight, 0)

    @property
    def node_readings(self) -> tuple[float | None, ...]:
        """`readings`, or, when the caller gave none, `utilization` for every registered node."""
        if self.readings or self.utilization is None:
            return self.readings
        return (self.utilization,) * self.registered_nodes


@frozen(kw_only=True)
class Recommendation:
    target: int
    reason: str


class Autoscaler(Protocol):
    def recommend(self, state: ScalingState) -> Recommendation:
        """The number of nodes the pool needs now, and why."""
        ...


def ask(autoscaler: Autoscaler, state: ScalingState) -> Recommendation:
    """The autoscaler's recommendation, or a hold that says why when it fails or answers nonsense.

    A broken autoscaler must not stop the pool from holding its minimum; an autoscaler that builds
    on another one (a composite's members) asks it the same way.
    """
    try:
        answer = autoscaler.recommend(state)
    except Exception as exc:
        return Recommendation(
            target=state.current_nodes,
            reason=f"autoscaler failed ({type(exc).__name__}: {exc}); holding",
        )
    target = getattr(answer, "target", None)
    if not isinstance(target, int) or isinstance(target, bool):
        return Recommendation(
            target=state.current_nodes,
            reason=f"autoscaler answered {answer!r}, not a Recommendation; holding",
        )
    return answer
