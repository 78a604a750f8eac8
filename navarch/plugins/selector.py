"""The provider-selector contract: the order in which a pool tries the places it can provision.

Each provider entry of a pool yields one `Candidate` per region, or per zone when it lists zones,
so that failover can move from a region without capacity to the next one. What the providers'
catalogs say (price, free capacity) is already on each candidate, so selectors stay pure and
synchronous. The core tries the candidates in the selector's order and skips the blocked ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from attrs import frozen

from navarch.plugins.provider import ProvisionRequest


@frozen(kw_only=True)
class Candidate:
    # The `[providers.NAME]` table this candidate provisions through.
    provider: str
    # The provider's plugin type (`gcp`), which decides how instance types are named.
    provider_type: str
    # The provider's own name for the pool's instance type.
    instance_type: str
    # The position of the candidate's provider entry in the pool's `providers` list: candidates
    # of one entry share it.
    entry: int = 0
    priority: int = 0
    weight: int = 1
    region: str = ""
    zone: str = ""
    # From the provider's catalog; None when it has no catalog or does not list this type.
    price_per_hour: float | None = None
    # Whether the catalog reports free capacity for this type here; None when unknown.
    available: bool | None = None
    # Whether this candidate asks for a spot (preemptible) machine.
    spot: bool = False

    def describe(self) -> str:
        place = "/".join(p for p in (self.region, self.zone) if p)
        market = "spot" if self.spot else ""
        return " ".join(p for p in (self.provider, place, self.instance_type, market) if p)


class Selector(Protocol):
    def order(self, candidates: Sequence[Candidate], request: ProvisionRequest) -> list[Candidate]:
        """The candidates in the order to try them; leaving one out means not trying it.

        The core hands the candidates over balanced: places the catalog does not report full
        first, then the least-populated zone. Keep that order among candidates the selector
        ranks equal (sort stably), so a pool's nodes spread across its zones."""
        ...
