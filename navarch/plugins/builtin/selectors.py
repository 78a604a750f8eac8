"""Built-in provider selectors.

A selector orders a pool's candidates (a provider entry in one region or zone, with the price and
capacity its provider's catalog reported). The core tries them in that order and skips the
blocked ones. The core hands them over least-populated place first (zone balance, then the
configured order), and every selector here sorts stably, so candidates it ranks equal keep that
order: the selector chooses the tier, zone balance the place within it.
"""

from __future__ import annotations

from collections.abc import Sequence

from navarch.plugins import Candidate, ProvisionRequest, Register, hookimpl


class PrioritySelector:
    """Tries provider entries by ascending `priority`; ties keep the order they came in."""

    def order(
        self, candidates: Sequence[Candidate], request: ProvisionRequest | None = None
    ) -> list[Candidate]:
        return sorted(candidates, key=lambda candidate: candidate.priority)


class RoundRobinSelector:
    """Spreads new nodes over the provider entries in proportion to their `weight`.

    Smooth weighted round robin, as nginx balances upstreams: weights 5, 1 and 1 give
    a a b a c a a, never five of one in a row. Each call picks one entry to go first; the others
    follow in the order they are due. Only the entries offered in a call take part in it, so a
    blocked entry's share goes to the others while it is blocked.
    """

    def __init__(self) -> None:
        # Provider entry -> how far it is due: smooth weighted round robin's running counts.
        self._current: dict[int, int] = {}

    def order(
        self, candidates: Sequence[Candidate], request: ProvisionRequest | None = None
    ) -> list[Candidate]:
        groups: dict[int, list[Candidate]] = {}
        for candidate in candidates:
            groups.setdefault(candidate.entry, []).append(candidate)
        if not groups:
            return []
        weights = {key: max(group[0].weight, 1) for key, group in groups.items()}
        for key, weight in weights.items():
            self._current[key] = self._current.get(key, 0) + weight
        chosen = max(groups, key=lambda key: self._current[key])
        self._current[chosen] -= sum(weights.values())
        rest = sorted((k for k in groups if k != chosen), key=lambda k: -self._current[k])
        return [c for key in (chosen, *rest) for c in groups[key]]


class CostSelector:
    """Tries the cheapest known price per hour first; candidates with no known price go last."""

    def order(
        self, candidates: Sequence[Candidate], request: ProvisionRequest | None = None
    ) -> list[Candidate]:
        def key(candidate: Candidate) -> tuple[bool, float, int]:
            price = candidate.price_per_hour
            return (price is None, price or 0.0, candidate.priority)

        return sorted(candidates, key=key)


class AvailabilitySelector:
    """Tries candidates whose provider reports free capacity first.

    Then come those it says nothing about, and last those it reports as full: reports lag, so
    they are still worth a try.
    """

    def order(
        self, candidates: Sequence[Candidate], request: ProvisionRequest | None = None
    ) -> list[Candidate]:
        rank = {True: 0, None: 1, False: 2}
        return sorted(candidates, key=lambda c: (rank[c.available], c.priority))


@hookimpl
def navarch_selectors(register: Register) -> None:
    register("priority", PrioritySelector)
    register("round-robin", RoundRobinSelector)
    register("cost", CostSelector)
    register("availability", AvailabilitySelector)
