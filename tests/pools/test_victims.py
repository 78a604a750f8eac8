from __future__ import annotations

from datetime import UTC, datetime, timedelta

from navarch.model import GpuMetrics, HealthStatus, Node, NodeMetrics, NodeStatus
from navarch.pools.nodes import DO_NOT_DISTURB, scaling_state
from navarch.pools.victims import choose_victims

ACTIVE = NodeStatus.ACTIVE
CORDONED = NodeStatus.CORDONED
UNHEALTHY = NodeStatus.UNHEALTHY
DRAINING = NodeStatus.DRAINING
DRAINED = NodeStatus.DRAINED
TERMINATED = NodeStatus.TERMINATED
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def node(
    node_id: str,
    status: NodeStatus = ACTIVE,
    *,
    health: HealthStatus = HealthStatus.HEALTHY,
    gpus: tuple[float, ...] | None = (50.0,),
    labels: dict[str, str] | None = None,
    age_minutes: int = 60,
) -> Node:
    metrics = None
    if gpus is not None:
        metrics = NodeMetrics(
            gpus=tuple(GpuMetrics(index=i, utilization_percent=u) for i, u in enumerate(gpus))
        )
    return Node(
        node_id=node_id,
        status=status,
        health=health,
        pool="p",
        labels=labels or {},
        metrics=metrics,
        registered_at=T0 - timedelta(minutes=age_minutes),
    )


def ids(plan) -> list[str]:
    return [n.node_id for n in plan.victims]


def test_victims_go_unhealthy_then_cordoned_then_idle_then_least_utilized():
    nodes = [
        node("busy", gpus=(90.0, 70.0)),
        node("idle", gpus=(0.0, 0.0)),
        node("light", gpus=(10.0, 20.0)),
        node("cordoned", CORDONED, gpus=(95.0,)),
        node("bad-hw", health=HealthStatus.UNHEALTHY, gpus=(99.0,)),
        node("bad", UNHEALTHY, gpus=(80.0,)),
    ]
    plan = choose_victims(nodes, 6, min_nodes=0)
    assert ids(plan) == ["bad", "bad-hw", "cordoned", "idle", "light", "busy"]
    assert plan.shortfall == ""
    assert ids(choose_victims(nodes, 2, min_nodes=0)) == ["bad", "bad-hw"]


def test_equally_used_nodes_leave_newest_first():
    nodes = [
        node("old", gpus=(0.0,), age_minutes=600),
        node("new", gpus=(0.0,), age_minutes=5),
        node("mid", gpus=(0.0,), age_minutes=60),
    ]
    assert ids(choose_victims(nodes, 3, min_nodes=0)) == ["new", "mid", "old"]


def test_node_without_metrics_sorts_as_unused_after_idle_ones():
    nodes = [node("busy", gpus=(40.0,)), node("silent", gpus=None), node("idle", gpus=(0.0,))]
    assert ids(choose_victims(nodes, 3, min_nodes=0)) == ["idle", "silent", "busy"]


def test_do_not_disturb_nodes_are_never_chosen_even_when_unhealthy():
    protected = {DO_NOT_DISTURB: "true"}
    nodes = [
        node("keep-bad", UNHEALTHY, labels=protected),
        node("keep-idle", gpus=(0.0,), labels={DO_NOT_DISTURB: "True"}),
        node("busy", gpus=(90.0,)),
        node("other-label", labels={DO_NOT_DISTURB: "false"}),
    ]
    plan = choose_victims(nodes, 3, min_nodes=0)
    assert ids(plan) == ["other-label", "busy"]
    assert plan.shortfall == f"removing 2 of 3: 2 of its nodes carry {DO_NOT_DISTURB}=true"


def test_scale_down_never_goes_below_min_nodes():
    nodes = [node(f"n{i}", gpus=(float(i),)) for i in range(4)]
    plan = choose_victims(nodes, 3, min_nodes=3)
    assert ids(plan) == ["n0"]
    assert plan.shortfall == "removing 1 of 3: the pool keeps min_nodes 3"
    assert choose_victims(nodes, 2, min_nodes=5).victims == ()


def test_leaving_nodes_are_not_chosen_again_and_do_not_count():
    nodes = [
        node("draining", DRAINING, gpus=(0.0,)),
        node("drained", DRAINED, gpus=(0.0,)),
        node("gone", TERMINATED, gpus=(0.0,)),
        node("a", gpus=(30.0,)),
        node("b", gpus=(60.0,)),
    ]
    assert ids(choose_victims(nodes, 5, min_nodes=1)) == ["a"]


def test_plan_carries_the_pool_drain_setting():
    nodes = [node("a"), node("b")]
    assert choose_victims(nodes, 1, min_nodes=0, drain=False).drain is False
    assert choose_victims(nodes, 1, min_nodes=0).drain is True


def test_scaling_state_reads_the_node_records():
    nodes = [
        node("a", gpus=(100.0, 50.0)),
        node("b", gpus=(20.0, 30.0)),
        node("new", health=HealthStatus.UNKNOWN, gpus=None),
        node("sick", UNHEALTHY, gpus=(0.0, 0.0)),
        node("cordoned", CORDONED, gpus=(40.0, 40.0)),
        node("leaving", DRAINING, gpus=(0.0, 0.0)),
    ]
    s = scaling_state(
        "p", nodes, min_nodes=2, max_nodes=9, in_flight=2, queue_depth=7, history=(10.0, 20.0)
    )
    assert s.current_nodes == 7  # five counted nodes and two instances in flight
    assert s.registered_nodes == 5
    assert s.healthy_nodes == 3  # a, b and the one that has not reported health yet
    assert s.utilization == (75 + 25 + 0 + 40) / 4
    assert s.history == (10.0, 20.0, 35.0)
    assert (s.queue_depth, s.min_nodes, s.max_nodes) == (7, 2, 9)
    empty = scaling_state("p", [], min_nodes=0, max_nodes=1, history=(5.0,))
    assert (empty.utilization, empty.history) == (None, (5.0,))
