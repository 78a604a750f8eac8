"""Which nodes leave a pool when it scales down.

Unhealthy nodes go first, then cordoned ones, then idle ones, then the least utilized; among
equals the newest goes first, since it has the least work and warm state on it. A node labelled
`navarch.io/do-not-disturb = "true"` is never chosen, and the pool never drops below `min_nodes`.
"""

from __future__ import annotations

from collections.abc import Iterable

from attrs import frozen

from navarch.model import Node, NodeStatus
from navarch.pools.nodes import (
    DO_NOT_DISTURB,
    counts_toward_size,
    gpu_utilization,
    is_do_not_disturb,
    is_unhealthy,
)


@frozen(kw_only=True)
class ScaleDown:
    victims: tuple[Node, ...]
    # Drain each victim before terminating it (the pool's scaling.scale_down.drain).
    drain: bool
    # Why fewer nodes than asked are leaving; empty when all of them are.
    shortfall: str = ""


def choose_victims(
    nodes: Iterable[Node], count: int, *, min_nodes: int, drain: bool = True
) -> ScaleDown:
    """Chooses up to `count` of the pool's nodes to remove, best victims first."""
    members = [n for n in nodes if counts_toward_size(n)]
    allowed = max(min(count, len(members) - min_nodes), 0)
    eligible = sorted((n for n in members if not is_do_not_disturb(n)), key=_victim_order)
    victims = tuple(eligible[:allowed])
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
