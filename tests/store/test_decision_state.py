"""Decision state: written with the change that moves it, read back whole, pruned with its node."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import trio
from support.store_backends import StoreBackend

from navarch.model import HealthStatus, Node, NodeStatus
from navarch.store import Change, DecisionState

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def kept(scope: str, key: str, value: str | None, seconds: float = 0) -> DecisionState:
    return DecisionState(
        scope=scope, key=key, value=value, updated_at=T0 + timedelta(seconds=seconds)
    )


async def test_later_states_replace_earlier_ones_and_none_deletes(
    store_factory: StoreBackend,
) -> None:
    async with store_factory.open() as store:
        await store.commit(
            Change(
                decisions=(
                    kept("pool.scaling", "dev", '{"manual_target":2}'),
                    kept("pool.breaker", "dev", '{"starts":[]}'),
                    kept("node.health", "a", '{"judge":{}}'),
                )
            )
        )
        await store.commit(
            Change(
                decisions=(
                    kept("pool.scaling", "dev", '{"manual_target":3}', 5),
                    kept("pool.breaker", "dev", None, 5),
                    # Deleting what is not there is no error.
                    kept("pool.breaker", "gone", None, 5),
                )
            )
        )
        loaded = (await store.load()).decisions
    assert loaded == (
        kept("node.health", "a", '{"judge":{}}'),
        kept("pool.scaling", "dev", '{"manual_target":3}', 5),
    )
    async with store_factory.open() as store:
        assert (await store.load()).decisions == loaded


async def test_a_pruned_node_takes_its_node_states_along(store_factory: StoreBackend) -> None:
    gone = Node(
        node_id="a", status=NodeStatus.TERMINATED, health=HealthStatus.UNKNOWN, registered_at=T0
    )
    async with store_factory.open() as store:
        await store.commit(
            Change(
                nodes=(gone,),
                decisions=(
                    kept("node.health", "a", "{}"),
                    kept("node.episode_intent", "a", '{"rule":"xid-replace"}'),
                    kept("node.health", "b", "{}"),
                    # A pool that happens to share the node's name keeps its state.
                    kept("pool.scaling", "a", "{}"),
                ),
            )
        )
        await store.prune_nodes(["a"], T0)
        await trio.lowlevel.checkpoint()
        loaded = (await store.load()).decisions
    assert [(d.scope, d.key) for d in loaded] == [("node.health", "b"), ("pool.scaling", "a")]
