"""Zone balance: new nodes spread over a pool's zones, victims leave the most crowded zone."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import trio
import trio.testing
from support.api import rpc
from support.pool_manager import ADMIN, SERVER, fleet, live_nodes, open_fleet, pool, wait_until

from navarch.api import wire as m
from navarch.config import PoolConfig, PoolProviderEntry
from navarch.controlplane import ControlPlane
from navarch.daemon.local import LocalMachines
from navarch.model import (
    GpuMetrics,
    HealthStatus,
    InstanceRecord,
    InstanceStatus,
    Node,
    NodeMetrics,
    NodeStatus,
)
from navarch.plugins import (
    Candidate,
    CapacityError,
    Instance,
    InstanceState,
    ProvisionRequest,
)
from navarch.plugins.builtin.fake_provider import FakeProvider, FakeProviderSettings
from navarch.plugins.builtin.selectors import (
    CostSelector,
    PrioritySelector,
    RoundRobinSelector,
)
from navarch.pools.candidates import candidates_for
from navarch.pools.failover import BlockKind, BlockList, provision_with_failover
from navarch.pools.nodes import DO_NOT_DISTURB
from navarch.pools.victims import choose_victims
from navarch.pools.zone_balance import Place, Spread, census, population
from navarch.store import SQLiteStore

REQUEST = ProvisionRequest(name="n", instance_type="h100-8x", pool="train")
T0 = datetime(2025, 1, 1, tzinfo=UTC)


class Zones:
    """A provider that makes an instance wherever it is asked, except in `full` zones."""

    def __init__(self, name: str, full: tuple[str, ...] = ()) -> None:
        self.name = name
        self.full = full
        self.made: list[str] = []

    async def provision(self, request: ProvisionRequest) -> Instance:
        await trio.sleep(0)
        if request.zone in self.full:
            raise CapacityError(f"no capacity in {request.zone}")
        self.made.append(request.zone or request.region)
        return Instance(
            instance_id=f"{self.name}-{len(self.made)}",
            provider=self.name,
            instance_type=request.instance_type,
            state=InstanceState.RUNNING,
            region=request.region,
            zone=request.zone,
        )


def entry(provider: str, *zones: str, priority: int = 0, region: str = "r1") -> PoolProviderEntry:
    return PoolProviderEntry(provider=provider, regions=(region,), zones=zones, priority=priority)


def pool_config(*entries: PoolProviderEntry) -> PoolConfig:
    return PoolConfig(instance_type="h100-8x", providers=entries, max_nodes=20)


async def fill(candidates, providers, count, *, selector=None, blocks=None) -> Counter[Place]:
    """Provisions `count` nodes one after another, as rounds would; returns them by place."""
    counts: Counter[Place] = Counter()
    claims: Counter[Place] = Counter()
    selector = selector or PrioritySelector()
    blocks = blocks or BlockList()
    for _ in range(count):
        spread = Spread(lambda: Counter(counts), claims)
        result = await provision_with_failover(
            candidates, selector, providers, REQUEST, blocks, spread=spread
        )
        c = result.candidate
        counts[(c.provider, c.region, c.zone)] += 1
        spread.release()
    assert not claims
    return counts


async def test_new_nodes_spread_over_the_zones_of_an_entry(autojump_clock):
    cands = candidates_for(pool_config(entry("g", "r1-a", "r1-b", "r1-c")), {"g": "fake"})
    counts = await fill(cands, {"g": Zones("g")}, 7)
    assert sorted(counts.values()) == [2, 2, 3]
    # The configured order breaks ties: the seventh node went to the first zone.
    assert counts[("g", "r1", "r1-a")] == 3


async def test_balance_stays_within_the_priority_tier(autojump_clock):
    cands = candidates_for(
        pool_config(entry("g", "r1-a", "r1-b"), entry("spare", "r1-c", priority=1)),
        {"g": "fake", "spare": "fake"},
    )
    providers = {"g": Zones("g"), "spare": Zones("spare")}
    counts = await fill(cands, providers, 6)
    assert counts == {("g", "r1", "r1-a"): 3, ("g", "r1", "r1-b"): 3}


async def test_a_full_zone_is_skipped_and_the_others_stay_balanced(autojump_clock):
    cands = candidates_for(
        pool_config(entry("g", "r1-a", "r1-b", "r1-c"), entry("spare", "r1-d", priority=1)),
        {"g": "fake", "spare": "fake"},
    )
    blocks = BlockList()
    providers = {"g": Zones("g", full=("r1-b",)), "spare": Zones("spare")}
    counts = await fill(cands, providers, 4, blocks=blocks)
    assert counts == {("g", "r1", "r1-a"): 2, ("g", "r1", "r1-c"): 2}
    [block] = blocks.active(trio.current_time())
    assert (block.zone, block.kind) == ("r1-b", BlockKind.CAPACITY)


async def test_cost_keeps_the_cheapest_provider_and_balances_its_regions(autojump_clock):
    cheap = PoolProviderEntry(provider="cheap", regions=("r1", "r2"))
    dear = PoolProviderEntry(provider="dear", regions=("r3",))
    cands = [
        attrs.evolve(c, price_per_hour=10.0 if c.provider == "cheap" else 30.0)
        for c in candidates_for(pool_config(cheap, dear), {"cheap": "fake", "dear": "fake"})
    ]
    providers = {"cheap": Zones("cheap"), "dear": Zones("dear")}
    counts = await fill(cands, providers, 4, selector=CostSelector())
    assert counts == {("cheap", "r1", ""): 2, ("cheap", "r2", ""): 2}


async def test_round_robin_keeps_its_weights_and_balances_within_each_entry(autojump_clock):
    cands = candidates_for(
        pool_config(
            PoolProviderEntry(provider="a", regions=("r1",), zones=("r1-a", "r1-b"), weight=3),
            PoolProviderEntry(provider="b", regions=("r2",), zones=("r2-a", "r2-b")),
        ),
        {"a": "fake", "b": "fake"},
    )
    counts = await fill(cands, {"a": Zones("a"), "b": Zones("b")}, 8, selector=RoundRobinSelector())
    assert counts == {
        ("a", "r1", "r1-a"): 3,
        ("a", "r1", "r1-b"): 3,
        ("b", "r2", "r2-a"): 1,
        ("b", "r2", "r2-b"): 1,
    }


def test_a_place_the_catalog_reports_full_goes_after_the_others():
    full, free, unknown = (
        Candidate(provider="g", provider_type="fake", instance_type="t", region=r, available=a)
        for r, a in (("r1", False), ("r2", True), ("r3", None))
    )
    spread = Spread(lambda: Counter({("g", "r2", ""): 5, ("g", "r3", ""): 1}), Counter())
    assert spread.order([full, free, unknown]) == [unknown, free, full]


def test_a_candidate_without_a_zone_holds_every_zone_of_its_region():
    counts = Counter({("g", "r1", "r1-a"): 2, ("g", "r1", "r1-b"): 1, ("g", "r2", ""): 4})
    any_zone = Candidate(provider="g", provider_type="fake", instance_type="t", region="r1")
    zone_b = Candidate(
        provider="g", provider_type="fake", instance_type="t", region="r1", zone="r1-b"
    )
    anywhere = Candidate(provider="g", provider_type="fake", instance_type="t")
    other = Candidate(provider="h", provider_type="fake", instance_type="t", region="r1")
    assert [population(c, counts) for c in (any_zone, zone_b, anywhere, other)] == [3, 1, 7, 0]


def test_calls_under_way_claim_their_zone():
    """Nodes asked for at once spread too: each call counts the places the others are trying."""
    cands = candidates_for(pool_config(entry("g", "r1-a", "r1-b", "r1-c")), {"g": "fake"})
    claims: Counter[Place] = Counter()
    spreads = []
    for _ in range(6):
        spread = Spread(Counter, claims)
        spread.trying(spread.order(cands)[0])
        spreads.append(spread)
    assert claims == {("g", "r1", "r1-a"): 2, ("g", "r1", "r1-b"): 2, ("g", "r1", "r1-c"): 2}
    # A call that fails over moves its claim; a call that ends gives it back.
    spreads[0].trying(cands[2])
    assert claims[("g", "r1", "r1-a")] == 1 and claims[("g", "r1", "r1-c")] == 3
    for spread in spreads:
        spread.release()
    assert claims == {}


def node(
    node_id: str,
    zone: str,
    *,
    status: NodeStatus = NodeStatus.ACTIVE,
    utilization: float = 50.0,
    labels: dict[str, str] | None = None,
    age_minutes: int = 60,
) -> Node:
    return Node(
        node_id=node_id,
        status=status,
        health=HealthStatus.HEALTHY,
        pool="p",
        provider="g",
        region="r1",
        zone=zone,
        labels=labels or {},
        metrics=NodeMetrics(gpus=(GpuMetrics(index=0, utilization_percent=utilization),)),
        registered_at=T0 - timedelta(minutes=age_minutes),
    )


def ids(plan) -> list[str]:
    return [n.node_id for n in plan.victims]


def test_victims_come_from_the_most_crowded_zone_first():
    nodes = [
        node("a1", "r1-a", utilization=10),
        node("a2", "r1-a", utilization=40),
        node("a3", "r1-a", utilization=60),
        node("b1", "r1-b", utilization=5),
        node("c1", "r1-c", utilization=30),
        node("c2", "r1-c", utilization=20),
    ]
    # a (3) gives its least used node; then a and c hold 2 each, and c's is less used.
    assert ids(choose_victims(nodes, 3, min_nodes=0)) == ["a1", "c2", "a2"]


def test_zone_balance_never_outranks_the_victim_safety_rules():
    protected = {DO_NOT_DISTURB: "true"}
    nodes = [
        node("a1", "r1-a", labels=protected),
        node("a2", "r1-a", labels=protected),
        node("a3", "r1-a"),
        node("a4", "r1-a", utilization=90),
        node("b-idle", "r1-b", utilization=0),
        node("b-sick", "r1-b", status=NodeStatus.UNHEALTHY),
        node("c-cordoned", "r1-c", status=NodeStatus.CORDONED, utilization=80),
    ]
    # Unhealthy, cordoned and idle nodes go before any busy one, wherever they are; the
    # protected nodes are never chosen but make their zone the most crowded.
    plan = choose_victims(nodes, 5, min_nodes=1)
    assert ids(plan) == ["b-sick", "c-cordoned", "b-idle", "a3", "a4"]
    assert ids(choose_victims(nodes, 10, min_nodes=4)) == ["b-sick", "c-cordoned", "b-idle"]


def test_victims_use_the_place_of_their_instance():
    nodes = [node("x", ""), node("y", ""), node("z", "")]
    places = {"x": ("g", "r1", "r1-a"), "y": ("g", "r1", "r1-b"), "z": ("g", "r1", "r1-b")}
    assert ids(choose_victims(nodes, 1, min_nodes=0, places=places)) == ["y"]


def test_census_counts_nodes_and_instances_still_registering():
    def record(instance_id, zone, status):
        return InstanceRecord(
            instance_id=instance_id,
            provider="g",
            pool="p",
            status=status,
            region="r1",
            zone=zone,
            instance_type="t",
            node_id=instance_id,
        )

    nodes = [
        node("n1", "wrong"),  # its instance says where it is
        node("n2", "r1-b"),  # navarch did not make it: it says where it is
        node("leaving", "r1-b", status=NodeStatus.DRAINING),
    ]
    records = [
        record("n1", "r1-a", InstanceStatus.RUNNING),
        record("booting", "r1-c", InstanceStatus.REGISTERING),
        record("gone", "r1-c", InstanceStatus.TERMINATED),
        record("leaving", "r1-b", InstanceStatus.RUNNING),
    ]
    assert census("p", nodes, records) == {
        ("g", "r1", "r1-a"): 1,
        ("g", "r1", "r1-b"): 1,
        ("g", "r1", "r1-c"): 1,
    }


ZONED = """
[providers.fake]
type = "fake"
provision_delay = "20s"
regions = ["local"]

[pools.dev]
instance_type = "h100-8x"
min_nodes = 0
max_nodes = 9
scale_interval = "10s"

[[pools.dev.providers]]
provider = "fake"
regions = ["local"]
zones = ["local-a", "local-b", "local-c"]

[[pools.dev.providers]]
provider = "fake"
regions = ["spare"]
priority = 1

[pools.dev.autoscaler]
type = "queue"
jobs_per_node = 1

[pools.dev.scaling.scale_down]
window = "0s"
delay_after_scale_up = "0s"
drain = false
"""


def zones(service) -> Counter[str]:
    return Counter(n.zone for n in live_nodes(service))


async def report(service, depth: int) -> None:
    await rpc(service, m.ReportQueueDepthRequest(pool="dev", depth=depth), ADMIN)


async def test_a_pool_spreads_over_its_zones_and_shrinks_from_the_most_crowded(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_fleet(tmp_path / "navarch.db", fleet(ZONED)) as service:
        # Nodes asked for at once, all in flight together, land two to a zone.
        await report(service, 6)
        await wait_until(lambda: len(live_nodes(service)) == 6)
        assert zones(service) == {"local-a": 2, "local-b": 2, "local-c": 2}
        await report(service, 3)
        await wait_until(lambda: len(live_nodes(service)) == 3)
        assert zones(service) == {"local-a": 1, "local-b": 1, "local-c": 1}
        # The next node goes to the first zone of the tie, and the one after to another zone.
        await report(service, 5)
        await wait_until(lambda: len(live_nodes(service)) == 5)
        assert sorted(zones(service).values()) == [1, 2, 2]
        assert all(n.region == "local" for n in live_nodes(service))
        await report(service, 4)
        await wait_until(lambda: len(live_nodes(service)) == 4)
        assert sorted(zones(service).values()) == [1, 1, 2]


class ZoneFull(FakeProvider):
    """The fake provider, with no capacity in one zone."""

    def __init__(self, zone: str) -> None:
        super().__init__(FakeProviderSettings(regions=("local",)))
        self.zone = zone

    async def provision(self, request: ProvisionRequest) -> Instance:
        if request.zone == self.zone:
            raise CapacityError(f"fake: no capacity in {self.zone}")
        return await super().provision(request)


async def test_a_zone_without_capacity_is_blocked_and_the_rest_stay_balanced(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    provider = ZoneFull("local-b")
    async with (
        SQLiteStore.open(tmp_path / "navarch.db", threaded=False) as store,
        ControlPlane.open(
            store,
            SERVER,
            config=fleet(ZONED),
            machines=LocalMachines,
            providers={"fake": provider},
        ) as service,
    ):
        await report(service, 4)
        await wait_until(lambda: len(live_nodes(service)) == 4)
        assert zones(service) == {"local-a": 2, "local-c": 2}
        view = await pool(service)
        assert [(b.zone, b.kind) for b in view.blocked] == [("local-b", "capacity")]
