from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.pool_config import pool_config

from navarch.plugins import Candidate, ProvisionRequest, Selector
from navarch.plugins.builtin.selectors import (
    AvailabilitySelector,
    CostSelector,
    PrioritySelector,
    RoundRobinSelector,
)

REQUEST = ProvisionRequest(name="n", instance_type="h100-8x", pool="p")


# (provider, regions) -> the index of that provider entry, as in one pool's `providers` list.
_ENTRIES: dict[tuple[str, tuple[str, ...]], int] = {}


def candidate(
    provider: str,
    *,
    priority: int = 0,
    weight: int = 1,
    region: str = "",
    price: float | None = None,
    available: bool | None = None,
    regions: tuple[str, ...] = (),
) -> Candidate:
    entry = _ENTRIES.setdefault((provider, regions), len(_ENTRIES))
    return Candidate(
        provider=provider,
        provider_type="fake",
        instance_type="h100-8x",
        entry=entry,
        priority=priority,
        weight=weight,
        region=region,
        price_per_hour=price,
        available=available,
    )


def names(ordered) -> list[str]:
    return [c.provider + (f"/{c.region}" if c.region else "") for c in ordered]


def test_selectors_are_registered_and_built_from_config(plugins):
    for name, cls in [
        ("priority", PrioritySelector),
        ("round-robin", RoundRobinSelector),
        ("cost", CostSelector),
        ("availability", AvailabilitySelector),
    ]:
        selector = pool_config(plugins, f'[pools.p.selector]\ntype = "{name}"\n').selector.create(
            Selector
        )
        assert isinstance(selector, cls)


def test_priority_keeps_configured_order_for_ties_and_regions():
    ordered = PrioritySelector().order(
        [
            candidate("b", priority=1, region="r1"),
            candidate("b", priority=1, region="r2"),
            candidate("a", priority=0),
            candidate("c", priority=1),
        ],
        REQUEST,
    )
    assert names(ordered) == ["a", "b/r1", "b/r2", "c"]


def test_round_robin_is_smooth_and_weighted_like_nginx():
    selector = RoundRobinSelector()
    cands = [candidate("a", weight=5), candidate("b", weight=1), candidate("c", weight=1)]
    firsts = [selector.order(cands, REQUEST)[0].provider for _ in range(14)]
    assert "".join(firsts) == "aabacaa" * 2


def test_round_robin_returns_every_candidate_with_the_chosen_entry_first():
    selector = RoundRobinSelector()
    cands = [
        candidate("a", weight=1, region="r1", regions=("r1", "r2")),
        candidate("a", weight=1, region="r2", regions=("r1", "r2")),
        candidate("b", weight=2),
    ]
    assert names(selector.order(cands, REQUEST)) == ["b", "a/r1", "a/r2"]
    assert names(selector.order(cands, REQUEST)) == ["a/r1", "a/r2", "b"]
    assert names(selector.order(cands, REQUEST)) == ["b", "a/r1", "a/r2"]


def test_round_robin_gives_a_missing_entry_share_to_the_others():
    selector = RoundRobinSelector()
    a, b = candidate("a", weight=1), candidate("b", weight=1)
    assert [selector.order([a, b], REQUEST)[0].provider for _ in range(2)] == ["a", "b"]
    # b is blocked for a while: a takes every node, then b comes back.
    assert [selector.order([a], REQUEST)[0].provider for _ in range(3)] == ["a", "a", "a"]
    assert selector.order([], REQUEST) == []
    assert {selector.order([a, b], REQUEST)[0].provider for _ in range(2)} == {"a", "b"}


@given(st.lists(st.integers(1, 6), min_size=1, max_size=5))
def test_round_robin_shares_match_weights_over_a_full_cycle(weights):
    selector = RoundRobinSelector()
    cands = [candidate(f"p{i}", weight=w) for i, w in enumerate(weights)]
    counts = Counter(selector.order(cands, REQUEST)[0].provider for _ in range(sum(weights)))
    assert counts == {f"p{i}": w for i, w in enumerate(weights)}


def test_cost_orders_by_known_price_with_unknown_last():
    ordered = CostSelector().order(
        [
            candidate("unknown-1"),
            candidate("dear", price=30.0),
            candidate("cheap", price=12.5, priority=5),
            candidate("unknown-0", priority=-1),
            candidate("cheap-too", price=12.5, priority=1),
            candidate("free", price=0.0),
        ],
        REQUEST,
    )
    assert names(ordered) == ["free", "cheap-too", "cheap", "dear", "unknown-0", "unknown-1"]


def test_availability_puts_reported_capacity_first_and_full_last():
    ordered = AvailabilitySelector().order(
        [
            candidate("full", available=False, priority=0),
            candidate("quiet", available=None, priority=0),
            candidate("free-2", available=True, priority=2),
            candidate("free-1", available=True, priority=1),
        ],
        REQUEST,
    )
    assert names(ordered) == ["free-1", "free-2", "quiet", "full"]


@pytest.mark.parametrize("cls", [PrioritySelector, CostSelector, AvailabilitySelector])
def test_stateless_selectors_do_not_drop_or_duplicate(cls):
    cands = [candidate(str(i), priority=i % 3, price=float(i % 2) or None) for i in range(7)]
    assert sorted(names(cls().order(cands, REQUEST))) == sorted(names(cands))
