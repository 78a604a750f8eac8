"""How a pool reads its node records: which nodes count, which are healthy, how busy they are."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from navarch.model import HealthStatus, Node, NodeStatus
from navarch.plugins import ScalingState

# A node with this label set to "true" is never chosen for scale-down.
DO_NOT_DISTURB = "navarch.io/do-not-disturb"

# Nodes on their way out no longer count toward the pool's size; counting them would make the
# pool choose another victim for the same scale-down on the next round.
_LEAVING = frozenset({NodeStatus.DRAINING, NodeStatus.DRAINED})


def counts_toward_size(node: Node) -> bool:
    return node.status is not NodeStatus.TERMINATED and node.status not in _LEAVING


def is_healthy(node: Node) -> bool:
    """Active and not judged unhealthy.

    A node that has not reported health yet counts as healthy: it has just registered, and
    counting it as missing would provision a second node in its place.
    """
    return node.status is NodeStatus.ACTIVE and node.health is not HealthStatus.UNHEALTHY


def is_unhealthy(node: Node) -> bool:
    return node.status is NodeStatus.UNHEALTHY or node.health is HealthStatus.UNHEALTHY


def is_do_not_disturb(node: Node) -> bool:
    return node.labels.get(DO_NOT_DISTURB, "").lower() == "true"


def gpu_utilization(node: Node) -> float | None:
    """The node's mean GPU utilization from its last heartbeat; None when it sent none."""
    if node.metrics is None or not node.metrics.gpus:
        return None
    gpus = node.metrics.gpus
    return sum(g.utilization_percent for g in gpus) / len(gpus)


def scaling_state(
    pool: str,
    nodes: Iterable[Node],
    *,
    min_nodes: int,
    max_nodes: int,
    in_flight: int = 0,
    queue_depth: int | None = None,
    history: Sequence[float] = (),
    now: datetime | None = None,
) -> ScalingState:
    """The state an autoscaler sees, from the pool's node records.

    `history` holds the utilization of earlier rounds; the state's history ends with this
    round's, so a caller keeps `state.history[-N:]` for the next round.
    """
    members = [n for n in nodes if counts_toward_size(n)]
    readings = tuple(map(gpu_utilization, members))
    samples = [u for u in readings if u is not None]
    utilization = sum(samples) / len(samples) if samples else None
    return ScalingState(
        pool=pool,
        current_nodes=len(members) + in_flight,
        min_nodes=min_nodes,
        max_nodes=max_nodes,
        healthy_nodes=sum(1 for n in members if is_healthy(n)),
        in_flight=in_flight,
        utilization=utilization,
        readings=readings,
        queue_depth=queue_depth,
        history=(*history, utilization) if utilization is not None else tuple(history),
        now=now,
    )
