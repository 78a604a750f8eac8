from __future__ import annotations

from datetime import UTC, datetime

import attrs
import pytest
import trio

from navarch.config import PoolConfig, PoolProviderEntry
from navarch.plugins import (
    AuthError,
    CapacityError,
    Instance,
    InstanceState,
    ProvisionRequest,
    QuotaError,
    ScalingState,
    TransientError,
)
from navarch.plugins.builtin.selectors import PrioritySelector, RoundRobinSelector
from navarch.pools.behavior import ScalingBehavior
from navarch.pools.candidates import candidates_for
from navarch.pools.failover import (
    BlockKind,
    BlockList,
    ProvisioningFailed,
    provision_with_failover,
)

REQUEST = ProvisionRequest(name="n1", instance_type="h100-8x", pool="train")


class Scripted:
    """A provider whose calls fail or succeed as scripted; after the script, it always does
    what `then` says."""

    def __init__(self, name: str, *script: BaseException | None, then: BaseException | None = None):
        self.name = name
        self.script = list(script)
        self.then = then
        self.calls: list[tuple[float, ProvisionRequest]] = []

    async def provision(self, request: ProvisionRequest) -> Instance:
        self.calls.append((trio.current_time(), request))
        outcome = self.script.pop(0) if self.script else self.then
        if outcome is not None:
            raise outcome
        return Instance(
            instance_id=f"{self.name}-{len(self.calls)}",
            provider=self.name,
            instance_type=request.instance_type,
            state=InstanceState.RUNNING,
            region=request.region,
            zone=request.zone,
            pool=request.pool,
        )

    def places(self) -> list[str]:
        return [f"{r.region}/{r.zone}".strip("/") for _, r in self.calls]


def pool(*entries: PoolProviderEntry) -> PoolConfig:
    return PoolConfig(instance_type="h100-8x", providers=entries, max_nodes=10)


def provider_types(*names: str) -> dict[str, str]:
    return dict.fromkeys(names, "fake")


async def provision(candidates, providers, blocks, selector=None):
    return await provision_with_failover(
        candidates, selector or PrioritySelector(), providers, REQUEST, blocks
    )


async def test_capacity_error_fails_over_at_once_and_blocks_that_zone(autojump_clock):
    cands = candidates_for(
        pool(
            PoolProviderEntry(provider="a", regions=("r1",), zones=("r1-a", "r1-b")),
            PoolProviderEntry(provider="b", priority=1),
        ),
        provider_types("a", "b"),
    )
    a = Scripted("a", CapacityError("no h100 in r1-a"))
    b = Scripted("b")
    blocks = BlockList()
    start = trio.current_time()

    result = await provision(cands, {"a": a, "b": b}, blocks)

    assert trio.current_time() == start  # no waiting before failing over
    assert result.instance.instance_id == "a-2"
    assert a.places() == ["r1/r1-a", "r1/r1-b"]
    assert b.calls == []
    [block] = blocks.active(trio.current_time())
    assert (block.provider, block.region, block.zone, block.instance_type) == (
        "a",
        "r1",
        "r1-a",
        "h100-8x",
    )
    assert block.kind is BlockKind.CAPACITY
    assert block.until - start == 300
    assert [x.error for x in result.attempts] == ["CapacityError: no h100 in r1-a", ""]

    # The next node skips the blocked zone without asking.
    await provision(cands, {"a": a, "b": b}, blocks)
    assert a.places()[-1] == "r1/r1-b"


async def test_quota_error_blocks_the_region_for_longer(autojump_clock):
    cands = candidates_for(
        pool(PoolProviderEntry(provider="a", regions=("r1", "r2"), zones=("r1-a", "r1-b", "r2-a"))),
        provider_types("a"),
    )
    a = Scripted("a", QuotaError("GPUS_ALL_REGIONS exceeded in r1"))
    blocks = BlockList()
    start = trio.current_time()
    await provision(cands, {"a": a}, blocks)
    assert a.places() == ["r1/r1-a", "r2/r2-a"]  # r1-b is in the blocked region
    [block] = blocks.active(trio.current_time())
    assert (block.region, block.zone, block.kind) == ("r1", None, BlockKind.QUOTA)
    assert block.until - start == 1800


async def test_a_quota_of_all_regions_blocks_the_whole_provider(autojump_clock):
    cands = candidates_for(
        pool(
            PoolProviderEntry(provider="a", regions=("r1", "r2")),
            PoolProviderEntry(provider="b", priority=1),
        ),
        provider_types("a", "b"),
    )
    a = Scripted("a", QuotaError("GPUS_ALL_REGIONS: 8 of 8 used", all_regions=True))
    b = Scripted("b")
    blocks = BlockList()
    result = await provision(cands, {"a": a, "b": b}, blocks)
    assert result.candidate.provider == "b"
    assert a.places() == ["r1"]  # r2 shares the quota
    [block] = blocks.active(trio.current_time())
    assert (block.provider, block.region, block.kind) == ("a", None, BlockKind.QUOTA)


async def test_a_spot_capacity_error_blocks_spot_machines_only(autojump_clock):
    spot = pool(PoolProviderEntry(provider="a", regions=("r1",), spot=True))
    a = Scripted("a", CapacityError("no spot h100 in r1"))
    blocks = BlockList()
    with pytest.raises(ProvisioningFailed):
        await provision(candidates_for(spot, provider_types("a")), {"a": a}, blocks)
    [block] = blocks.active(trio.current_time())
    assert (block.kind, block.spot) == (BlockKind.CAPACITY, True)
    assert block.describe() == "a (r1, h100-8x, spot): capacity: no spot h100 in r1"
    assert a.calls[0][1].spot
    # The same place on demand is still tried.
    on_demand = candidates_for(spot, provider_types("a"), on_demand=[0])
    result = await provision(on_demand, {"a": a}, blocks)
    assert not result.candidate.spot and not a.calls[-1][1].spot


async def test_auth_error_blocks_the_whole_provider_longest(autojump_clock):
    cands = candidates_for(
        pool(
            PoolProviderEntry(provider="a", regions=("r1", "r2")),
            PoolProviderEntry(provider="b", priority=1),
        ),
        provider_types("a", "b"),
    )
    a = Scripted("a", AuthError("invalid API key"))
    b = Scripted("b")
    blocks = BlockList()
    start = trio.current_time()
    result = await provision(cands, {"a": a, "b": b}, blocks)
    assert result.candidate.provider == "b"
    assert a.places() == ["r1"]  # r2 was not tried: the credentials are the same
    [block] = blocks.active(trio.current_time())
    assert (block.provider, block.region, block.kind) == ("a", None, BlockKind.AUTH)
    assert block.until - start == 3600
    assert block.describe() == "a: auth: invalid API key"


async def test_transient_error_retries_the_same_entry_with_backoff(autojump_clock):
    cands = candidates_for(
        pool(PoolProviderEntry(provider="a"), PoolProviderEntry(provider="b", priority=1)),
        provider_types("a", "b"),
    )
    a = Scripted("a", TransientError("503"), TransientError("timeout"))
    b = Scripted("b")
    blocks = BlockList()
    start = trio.current_time()
    result = await provision(cands, {"a": a, "b": b}, blocks)
    assert result.candidate.provider == "a"
    assert [t - start for t, _ in a.calls] == [0, 1, 3]  # waits of 1 s, then 2 s
    assert b.calls == []
    assert blocks.active(trio.current_time()) == []


async def test_transient_error_that_outlasts_its_retries_moves_on(autojump_clock):
    cands = candidates_for(
        pool(PoolProviderEntry(provider="a"), PoolProviderEntry(provider="b", priority=1)),
        provider_types("a", "b"),
    )
    a = Scripted("a", then=TransientError("503"))
    b = Scripted("b")
    blocks = BlockList()
    start = trio.current_time()
    result = await provision(cands, {"a": a, "b": b}, blocks)
    assert len(a.calls) == 3
    assert result.candidate.provider == "b"
    assert b.calls[0][0] - start == 3
    [block] = blocks.active(trio.current_time())
    assert (block.kind, block.until - block.since) == (BlockKind.ERROR, 60)


async def test_unknown_error_blocks_briefly_and_moves_on(autojump_clock):
    cands = candidates_for(
        pool(PoolProviderEntry(provider="a"), PoolProviderEntry(provider="b", priority=1)),
        provider_types("a", "b"),
    )
    a = Scripted("a", ValueError("plugin bug"))
    result = await provision(cands, {"a": a, "b": Scripted("b")}, BlockList())
    assert result.candidate.provider == "b"
    assert result.attempts[0].block.kind is BlockKind.ERROR


async def test_pool_whose_every_provider_failed_recovers_when_blocks_expire(autojump_clock):
    cands = candidates_for(
        pool(PoolProviderEntry(provider="a"), PoolProviderEntry(provider="b", priority=1)),
        provider_types("a", "b"),
    )
    a = Scripted("a", CapacityError("full"), CapacityError("full"))
    b = Scripted("b", CapacityError("full"), CapacityError("full"))
    providers = {"a": a, "b": b}
    blocks = BlockList()

    with pytest.raises(ProvisioningFailed) as failed:
        await provision(cands, providers, blocks)
    assert str(failed.value) == "all providers failed; last: b h100-8x: CapacityError: full"
    assert [x.candidate.provider for x in failed.value.attempts] == ["a", "b"]
    assert len(failed.value.blocks) == 2

    # While everything is blocked, nothing is called and the error says until when.
    await trio.sleep(299)
    with pytest.raises(ProvisioningFailed) as blocked:
        await provision(cands, providers, blocks)
    assert str(blocked.value).startswith("every provider entry is blocked: a (h100-8x): capacity")
    assert (len(a.calls), len(b.calls)) == (1, 1)

    # Five minutes after the failures the blocks are gone, and the capacity is back.
    await trio.sleep(1)
    a.script.clear()
    result = await provision(cands, providers, blocks)
    assert result.candidate.provider == "a"
    assert blocks.active(trio.current_time()) == []


async def test_blocks_are_listed_for_people_soonest_first(autojump_clock):
    cands = candidates_for(
        pool(
            PoolProviderEntry(provider="a", regions=("r1",)),
            PoolProviderEntry(provider="b", priority=1),
            PoolProviderEntry(provider="c", priority=2),
        ),
        provider_types("a", "b", "c"),
    )
    providers = {
        "a": Scripted("a", QuotaError("quota")),
        "b": Scripted("b", CapacityError("full")),
        "c": Scripted("c"),
    }
    blocks = BlockList()
    await provision(cands, providers, blocks)
    now = trio.current_time()
    active = blocks.active(now)
    assert [(b.provider, b.kind.value, b.reason) for b in active] == [
        ("b", "capacity", "full"),
        ("a", "quota", "quota"),
    ]
    wall = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert active[1].until_wall(now, wall) == datetime(2025, 1, 1, 12, 30, tzinfo=UTC)
    assert blocks.unblock("a") == 1
    assert [b.provider for b in blocks.active(now)] == ["b"]


async def test_blocked_entry_share_goes_to_the_others_under_round_robin(autojump_clock):
    cands = candidates_for(
        pool(PoolProviderEntry(provider="a"), PoolProviderEntry(provider="b")),
        provider_types("a", "b"),
    )
    a = Scripted("a", AuthError("expired"))
    b = Scripted("b")
    selector = RoundRobinSelector()
    blocks = BlockList()
    chosen = [
        (await provision(cands, {"a": a, "b": b}, blocks, selector)).candidate.provider
        for _ in range(4)
    ]
    assert chosen == ["b", "b", "b", "b"]
    assert len(a.calls) == 1


async def test_provider_that_is_not_loaded_is_skipped(autojump_clock):
    cands = candidates_for(
        pool(PoolProviderEntry(provider="gone"), PoolProviderEntry(provider="b", priority=1)),
        provider_types("gone", "b"),
    )
    result = await provision(cands, {"b": Scripted("b")}, BlockList())
    assert result.attempts[0].error == "provider gone is not loaded"
    assert result.candidate.provider == "b"


async def test_pool_reaches_its_minimum_while_one_provider_is_down(autojump_clock):
    """Scaling rounds as the pool manager runs them, with the preferred provider refusing
    every call: the pool still reaches min_nodes through the other one, and stops there."""
    config = pool(
        PoolProviderEntry(provider="down", priority=0),
        PoolProviderEntry(provider="up", priority=1),
    )
    down = Scripted("down", then=AuthError("account suspended"))
    up = Scripted("up")
    providers = {"down": down, "up": up}
    cands = candidates_for(config, provider_types("down", "up"))
    behavior = ScalingBehavior()
    blocks = BlockList()
    instances: list[Instance] = []
    for _ in range(10):
        state = ScalingState(
            pool="train",
            current_nodes=len(instances),
            healthy_nodes=len(instances),
            min_nodes=3,
            max_nodes=10,
        )
        decision = behavior.decide(state, None, trio.current_time())
        for i in range(decision.change):
            request = attrs.evolve(REQUEST, name=f"train-{len(instances) + i}")
            result = await provision_with_failover(
                cands, PrioritySelector(), providers, request, blocks
            )
            instances.append(result.instance)
        await trio.sleep(30)
    assert [i.provider for i in instances] == ["up", "up", "up"]
    assert len(down.calls) == 1  # blocked for an hour after the first refusal
