"""Reads on demand and pruning, on both backends: one node's commands page by page, the switches,
remediation episodes by pool and node, decision state, and what pruning a node takes with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from support.store_backends import StoreBackend

from navarch import model as m
from navarch.store import Change, DecisionState, HealthReport, NodeToken, RemediationSwitch

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _node(node_id: str) -> m.Node:
    return m.Node(
        node_id=node_id, status=m.NodeStatus.ACTIVE, health=m.HealthStatus.HEALTHY, registered_at=T0
    )


def _command(command_id: str, node_id: str) -> m.Command:
    return m.Command(
        command_id=command_id,
        node_id=node_id,
        type=m.CommandType.CORDON,
        status=m.CommandStatus.SUCCEEDED,
        issued_at=T0,
    )


def _episode(episode_id: str, node_id: str, pool: str) -> m.Remediation:
    return m.Remediation(
        episode_id=episode_id,
        node_id=node_id,
        pool=pool,
        step=m.RemediationStep.DONE,
        started_at=T0,
    )


async def test_commands_switches_and_episodes_read_back_newest_first(
    store_factory: StoreBackend,
) -> None:
    async with store_factory.open() as store:
        await store.commit(
            Change(
                commands=(
                    *(_command(f"c{i}", "n1") for i in range(5)),
                    _command("c9", "n2"),
                ),
                remediations=(
                    _episode("ep1", "n1", "train"),
                    _episode("ep2", "n2", "train"),
                    _episode("ep3", "n1", "serve"),
                ),
                remediation_switches=(
                    RemediationSwitch(kind="pause", pool="", reason="upgrade", since=T0),
                    RemediationSwitch(kind="breaker", pool="train", since=T0),
                ),
            )
        )
        page = await store.list_commands(node_id="n1", limit=3, before="")
        assert [c.command_id for c in page] == ["c4", "c3", "c2"]
        rest = await store.list_commands(node_id="n1", limit=3, before="c2")
        assert [c.command_id for c in rest] == ["c1", "c0"]
        assert rest[0] == _command("c1", "n1")
        switches = await store.remediation_switches()
        assert [(s.kind, s.pool, s.reason) for s in switches] == [
            ("breaker", "train", ""),
            ("pause", "", "upgrade"),
        ]
        await store.commit(
            Change(
                remediation_switches=(
                    RemediationSwitch(kind="breaker", pool="train", since=T0, on=False),
                )
            )
        )
        assert [s.kind for s in await store.remediation_switches()] == ["pause"]
        train = await store.list_remediations(pool="train", node_id="", limit=10)
        assert [e.episode_id for e in train] == ["ep2", "ep1"]
        mine = await store.list_remediations(pool="", node_id="n1", limit=1)
        assert [e.episode_id for e in mine] == ["ep3"]
        # Ended episodes are not loaded at start.
        assert (await store.load()).open_remediations == ()


async def test_decision_state_is_replaced_deleted_and_pruned_with_its_node(
    store_factory: StoreBackend,
) -> None:
    def decision(scope: str, key: str, value: str | None) -> DecisionState:
        return DecisionState(scope=scope, key=key, value=value, updated_at=T0)

    old, recent = T0 - timedelta(days=30), T0 + timedelta(days=1)
    async with store_factory.open() as store:
        await store.commit(
            Change(
                nodes=(_node("n1"), _node("n2")),
                commands=(_command("c1", "n1"), _command("c2", "n2")),
                node_tokens=(NodeToken(node_id="n1", token_hash="ab" * 32, issued_at=T0),),
                health_reports=(
                    HealthReport(
                        report_id="r1",
                        node_id="n1",
                        events=(m.HealthEvent(type=m.HealthEventType.XID, time=T0, xid=79),),
                    ),
                ),
                events=(
                    m.Event(event_id="e1", time=old, kind="node.registered", node_id="n1"),
                    m.Event(event_id="e2", time=recent, kind="node.cordoned", node_id="n1"),
                    m.Event(event_id="e3", time=old, kind="node.registered", node_id="n2"),
                ),
                decisions=(
                    decision("node.judge", "n1", '{"window":1}'),
                    decision("node.judge", "n2", '{"window":2}'),
                    decision("pool.floor", "n1", "3"),
                    decision("pool.floor", "train", "1"),
                ),
            )
        )
        await store.commit(
            Change(
                decisions=(
                    decision("pool.floor", "train", "2"),
                    decision("pool.floor", "n1", None),
                )
            )
        )
        await store.prune_nodes(["n1"], T0)
        state = await store.load()
        assert [n.node_id for n in state.nodes] == ["n2"]
        assert [(d.scope, d.key, d.value) for d in state.decisions] == [
            ("node.judge", "n2", '{"window":2}'),
            ("pool.floor", "train", "2"),
        ]
        assert state.node_tokens == {}
        assert await store.get_command("c1") is None
        assert await store.get_command("c2") == _command("c2", "n2")
        # The pruned node's old events go; its recent ones wait for their own retention.
        events = await store.list_events(node_id="", kinds=(), limit=10, before="")
        assert [e.event_id for e in events] == ["e3", "e2"]
    assert store_factory.execute("SELECT COUNT(*) FROM health_events") == [(0,)]
