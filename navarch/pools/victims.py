"""Which nodes leave a pool when it scales down.

Unhealthy nodes go first, then cordoned ones, then idle ones, then the rest. Within each of these
ranks the victim comes from the most crowded place (provider, region and zone), counted again
after each victim, so that the pool stays balanced over its zones; then the least utilized goes,
and among equals the newest, since it has the least work and warm state on it. A node labelled
`navarch.io/do-not-disturb = "true"` is never chosen (it still counts in its zone), and the pool
never drops below `min_nodes`.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping

from attrs import frozen

from navarch.model import Node, NodeStatus
from navarch.pools.nodes import (
    DO_NOT_DISTURB,
    counts_toward_size,
    gpu_utilization,
    is_do_not_disturb,
    is_unhealthy,
)
from navarch.pools.zone_balance import Place, place_of


@frozen(kw_only=True)
class ScaleDown:
    victims: tuple[Node, ...]
    # Drain each victim before terminating it (the pool's scaling.scale_down.drain).
    drain: bool
    # Why fewer nodes than asked are leaving; empty when all of them are.
    shortfall: str = ""


def choose_victims(
    nodes: Iterable[Node],
    count: int,
    *,
    min_nodes: int,
    drain: bool = True,
    places: Mapping[str, Place] | None = None,
) -> ScaleDown:
    """Chooses up to `count` of the pool's nodes to remove, best victims first.

    `places` gives each node's place by node id (where its instance runs); a node it leaves out
    is where the node says it is.
    """
    members = [n for n in nodes if counts_toward_size(n)]
    allowed = max(min(count, len(members) - min_nodes), 0)
    where = {n.node_id: (places or {}).get(n.node_id) or place_of(n) for n in members}
    crowd = Counter(where.values())
    eligible = sorted((n for n in members if not is_do_not_disturb(n)), key=_victim_order)
    # Each rank's candidates by place, best victim first.
    queues: dict[tuple[int, Place], deque[Node]] = {}
    for node in eligible:
        queues.setdefault((_victim_order(node)[0], where[node.node_id]), deque()).append(node)
    chosen: list[Node] = []
    while len(chosen) < allowed and queues:
        rank = min(r for r, _ in queues)
        key = min(
            (k for k in queues if k[0] == rank),
            key=lambda k: (-crowd[k[1]], _victim_order(queues[k][0])),
        )
        node = queues[key].popleft()
        if not queues[key]:
            del queues[key]
        crowd[key[1]] -= 1
        chosen.append(node)
    victims = tuple(chosen)
    shortfall = ""
    if len(victims) < count:
        why = []
        if allowed < count:
            why.append(f"the pool keeps min_nodes {min_nodes}")
        protected = len(members) - len(eligible)
        if len(eligible) < allowed and protected:
            why.append(f"{protected} of its nodes carry {DO_NOT_DISTURB}=true")
        shortfall = f"removing {len(victims)} of {count}: " + " and ".join(why)
    return ScaleDown(victims=victims, drain=drain, shortfall=shortfall)


def _victim_order(node: Node) -> tuple[int, float, float, str]:
    utilization = gpu_utilization(node)
    if is_unhealthy(node):
        rank = 0
    elif node.status is NodeStatus.CORDONED:
        rank = 1
    elif utilization == 0:
        rank = 2
    else:
        rank = 3
    registered = node.registered_at.timestamp() if node.registered_at else float("-inf")
    # A node that has not reported yet sorts as unused.
    return (rank, utilization or 0.0, -registered, node.node_id)
