"""Zone balance: new nodes go to the least-populated place, victims leave the most crowded one.

A place is a provider, region and zone. As Cluster Autoscaler balances similar node groups, a
pool's scale-up hands the selector its candidates eligible first and then least-populated first
(`Spread`). Eligible means that the provider's catalog does not report the place full; blocked
places are not offered at all. The built-in selectors sort stably, so among the candidates a
selector ranks equal (the same priority, the same price, one round-robin entry) the
least-populated place goes first, while the selector's own preferences still decide between
tiers. A place's population counts the pool's nodes, its instances still registering, and the
provision calls under way that are trying the place, so that the nodes one round asks for
spread too.

Scale-down (`navarch.pools.victims`) takes victims of equal rank from the most crowded place
first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

from navarch.model import IN_FLIGHT, LIVE, InstanceRecord, Node
from navarch.plugins import Candidate
from navarch.pools.nodes import counts_toward_size

# A provider (the `[providers.NAME]` table), region and zone; empty when not known.
Place = tuple[str, str, str]


def place_of(node: Node, record: InstanceRecord | None = None) -> Place:
    """Where the node runs: where its provider put its instance, or, for a node navarch did not
    make, where the node says it is."""
    if record is not None:
        return (record.provider, record.region, record.zone)
    return (node.provider, node.region, node.zone)


def places(nodes: Iterable[Node], records: Iterable[InstanceRecord]) -> dict[str, Place]:
    """The place of each node, by node id."""
    live = {r.node_id: r for r in records if r.status in LIVE}
    return {n.node_id: place_of(n, live.get(n.node_id)) for n in nodes}


def census(pool: str, nodes: Iterable[Node], records: Iterable[InstanceRecord]) -> Counter[Place]:
    """The pool's nodes, and its instances whose daemon has not registered yet, by place."""
    live = {r.node_id: r for r in records if r.pool == pool and r.status in LIVE}
    counts: Counter[Place] = Counter()
    seen = set()
    for node in nodes:
        if node.pool != pool:
            continue
        seen.add(node.node_id)
        if counts_toward_size(node):
            counts[place_of(node, live.get(node.node_id))] += 1
    for record in live.values():
        if record.status in IN_FLIGHT and record.node_id not in seen:
            counts[(record.provider, record.region, record.zone)] += 1
    return counts


def population(candidate: Candidate, counts: Mapping[Place, int]) -> int:
    """The nodes in the candidate's place. A candidate that leaves the zone (or the region) to
    its provider holds every zone (or region) of that provider."""
    return sum(
        count
        for (provider, region, zone), count in counts.items()
        if provider == candidate.provider
        and candidate.region in ("", region)
        and candidate.zone in ("", zone)
    )


class Spread:
    """Zone balance for one provision call of a pool.

    `census` counts the pool's nodes by place when the call orders its candidates; `claims` is
    shared by the pool's calls under way, each holding the place it is trying until its
    instance is recorded (then the census counts it) or the call fails.
    """

    def __init__(self, census: Callable[[], Counter[Place]], claims: Counter[Place]) -> None:
        self._census = census
        self._claims = claims
        self._claimed: Place | None = None

    def order(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        """Eligible candidates first, then the least-populated; ties keep their order."""
        counts = self._census()
        counts.update(self._claims)
        return sorted(candidates, key=lambda c: (c.available is False, population(c, counts)))

    def trying(self, candidate: Candidate) -> None:
        """Counts the candidate's place as taken by this call, instead of the one before."""
        self.release()
        self._claimed = (candidate.provider, candidate.region, candidate.zone)
        self._claims[self._claimed] += 1

    def release(self) -> None:
        """Gives back the place this call holds."""
        if self._claimed is None:
            return
        self._claims[self._claimed] -= 1
        if self._claims[self._claimed] <= 0:
            del self._claims[self._claimed]
        self._claimed = None
