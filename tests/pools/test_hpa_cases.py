"""Cases from Kubernetes' own HPA tests, run through navarch's `target` autoscaler and scaling
behavior.

Each case names the Go test it comes from, in kubernetes/kubernetes
pkg/controller/podautoscaler: replica_calculator_test.go for the replica count, and
horizontal_test.go for the rate policies. The HPA's words map to navarch's:

- a ready pod with a metric is a registered node that reports GPU utilization;
- a ready pod without a metric is a registered node that has sent no metrics yet;
- an unready pod, or one in its CPU initialization period, is an instance still in flight;
- a failed pod, or one being deleted, is a node that has left the pool (terminated, draining).

CPU usage over request becomes GPU utilization in percent. Where a case's usage is above 100 %
of its request, which a GPU cannot report, its readings and its target are scaled down by the
same factor (the replica count depends only on their ratio, and the "100 % of the request" that
a missing pod is assumed to use never meets such a case). For custom pod metrics (qps) the
HPA counts every pod that reports, ready or not, so those pods are reporting nodes here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from navarch.config import PoolScalingConfig, ScaleDownConfig, ScaleUpConfig
from navarch.config.tables import ScalingPolicy
from navarch.model import GpuMetrics, HealthStatus, Node, NodeMetrics, NodeStatus
from navarch.plugins import Recommendation, ScalingState
from navarch.plugins.builtin.autoscalers import TargetAutoscaler, TargetSettings
from navarch.pools.behavior import ScalingBehavior
from navarch.pools.nodes import scaling_state

T0 = datetime(2025, 1, 1, tzinfo=UTC)
NOW = 1000.0

# (Go test, current nodes, readings of the registered nodes (None: no metric), instances in
# flight, nodes that left the pool, target percent, expected nodes)
REPLICA_CASES = [
    ("TestReplicaCalcScaleUp", 3, (30, 50, 70), 0, 0, 30, 5),
    ("TestReplicaCalcScaleUpUnreadyLessScale", 3, (50, 70), 1, 0, 30, 4),
    ("TestReplicaCalcScaleUpHotCpuLessScale", 3, (50, 70), 1, 0, 30, 4),
    ("TestReplicaCalcScaleUpUnreadyNoScale", 3, (40,), 2, 0, 30, 3),
    ("TestReplicaCalcScaleHotCpuNoScale", 3, (40,), 2, 0, 30, 3),
    ("TestReplicaCalcScaleUpIgnoresFailedPods", 2, (50, 70), 0, 2, 30, 4),
    ("TestReplicaCalcScaleUpIgnoresDeletionPods", 2, (50, 70), 0, 2, 30, 4),
    ("TestReplicaCalcScaleUpCM", 3, (20, 10, 30), 0, 0, 15, 4),
    ("TestReplicaCalcScaleUpCMUnreadyHotCpuNoLessScale", 3, (50, 10, 30), 0, 0, 15, 6),
    ("TestReplicaCalcScaleUpCMUnreadyHotCpuScaleWouldScaleDown", 3, (50, 15, 30), 0, 0, 15, 7),
    ("TestReplicaCalcScaleDown", 5, (10, 30, 50, 25, 25), 0, 0, 50, 3),
    ("TestReplicaCalcScaleDownCM", 5, (12, 12, 12, 12, 12), 0, 0, 20, 3),
    ("TestReplicaCalcScaleDownIncludeUnreadyPods", 5, (10, 30, 50), 2, 0, 50, 2),
    ("TestReplicaCalcScaleDownExcludeUnscheduledPods", 5, (10,), 4, 0, 50, 1),
    ("TestReplicaCalcScaleDownIgnoreHotCpuPods", 5, (10, 30, 50), 2, 0, 50, 2),
    ("TestReplicaCalcScaleDownIgnoresFailedPods", 5, (10, 30, 50, 25, 25), 0, 2, 50, 3),
    ("TestReplicaCalcScaleDownIgnoresDeletionPods", 5, (10, 30, 50, 25, 25), 0, 2, 50, 3),
    # Requests 0.9, 1.0 and 1.1 CPU; usage over request, halved with the target.
    ("TestReplicaCalcTolerance", 3, (1010 / 18, 1030 / 20, 1020 / 22), 0, 0, 50, 3),
    ("TestReplicaCalcToleranceCM", 3, (20, 21, 21), 0, 0, 20, 3),
    # Readings and target divided by 10; the two metrics of pods outside the pool do not exist.
    ("TestReplicaCalcSuperfluousMetrics", 4, (40, 95, 30, 70), 0, 0, 10, 24),
    ("TestReplicaCalcMissingMetrics", 4, (40, 9.5, None, None), 0, 0, 100, 3),
    ("TestReplicaCalcMissingMetricsNoChangeEq", 2, (100, None), 0, 0, 100, 2),
    ("TestReplicaCalcMissingMetricsNoChangeGt", 2, (95, None), 0, 0, 50, 2),
    ("TestReplicaCalcMissingMetricsNoChangeLt", 2, (60, None), 0, 0, 100, 2),
    ("TestReplicaCalcMissingMetricsUnreadyChange", 3, (45, None), 1, 0, 50, 3),
    ("TestReplicaCalcMissingMetricsHotCpuNoChange", 3, (45, None), 1, 0, 50, 3),
    ("TestReplicaCalcMissingMetricsUnreadyScaleUp", 3, (100, None), 1, 0, 25, 4),
    ("TestReplicaCalcMissingMetricsHotCpuScaleUp", 3, (100, None), 1, 0, 25, 4),
    ("TestReplicaCalcMissingMetricsUnreadyScaleDown", 4, (10, 10, None), 1, 0, 50, 3),
    # Its two steps: 50 % used against a 56 % target scales down, against 55 % it is tolerated.
    ("TestReplicaCalcComputedToleranceAlgImplementation", 10, (50,) * 10, 0, 0, 56, 9),
    ("TestReplicaCalcComputedToleranceAlgImplementation", 10, (50,) * 10, 0, 0, 55, 10),
]

# Per-pod targets of object and external metrics: the queue depth with a target of jobs per node.
# (Go test, current nodes, queue depth, target per node, expected nodes)
QUEUE_CASES = [
    ("TestReplicaCalcScaleUpCMPerPodObject", 3, 20000, 5000, 4),
    ("TestReplicaCalcScaleDownPerPodCMObject", 5, 6000, 2000, 3),
    ("TestReplicaCalcTolerancePerPodCMObject", 4, 20166, 5000, 4),
    ("TestReplicaCalcScaleUpPerPodCMExternal", 3, 8600, 2150, 4),
    ("TestReplicaCalcScaleDownPerPodCMExternal", 5, 8600, 2867, 3),
    ("TestReplicaCalcTolerancePerPodCMExternal", 3, 8600, 2900, 3),
]


def node(index: int, reading: float | None, status: NodeStatus = NodeStatus.ACTIVE) -> Node:
    metrics = None
    if reading is not None:
        metrics = NodeMetrics(gpus=(GpuMetrics(index=0, utilization_percent=float(reading)),))
    return Node(
        node_id=f"n{index}",
        status=status,
        health=HealthStatus.HEALTHY,
        pool="p",
        labels={},
        metrics=metrics,
        registered_at=T0,
    )


def passes_through() -> ScalingBehavior:
    """The scaling behavior with nothing that holds a recommendation back."""
    return ScalingBehavior(
        PoolScalingConfig(
            scale_up=ScaleUpConfig(nodes=0, percent=100_000.0),
            scale_down=ScaleDownConfig(window=timedelta(0), delay_after_scale_up=timedelta(0)),
        )
    )


@pytest.mark.parametrize(
    ("case", "current", "readings", "booting", "left", "target", "expected"),
    REPLICA_CASES,
    ids=[f"{c[0]}-{c[5]}" for c in REPLICA_CASES],
)
def test_target_on_utilization_counts_nodes_as_the_hpa_counts_pods(
    case, current, readings, booting, left, target, expected
):
    nodes = [node(i, r) for i, r in enumerate(readings)]
    gone = (NodeStatus.TERMINATED, NodeStatus.DRAINING)
    nodes += [node(100 + i, 90.0, gone[i % 2]) for i in range(left)]
    state = scaling_state("p", nodes, min_nodes=0, max_nodes=1000, in_flight=booting)
    assert state.current_nodes == current
    scaler = TargetAutoscaler(TargetSettings(target_value=float(target)))
    recommendation = scaler.recommend(state)
    decision = passes_through().decide(state, recommendation, NOW)
    assert decision.target == expected, decision.reason


@pytest.mark.parametrize(
    ("case", "current", "depth", "per_node", "expected"),
    QUEUE_CASES,
    ids=[c[0] for c in QUEUE_CASES],
)
def test_target_on_queue_depth_follows_the_hpa_per_pod_targets(
    case, current, depth, per_node, expected
):
    state = ScalingState(
        pool="p", current_nodes=current, min_nodes=0, max_nodes=1000, queue_depth=depth
    )
    scaler = TargetAutoscaler(TargetSettings(metric="queue_depth", target_value=float(per_node)))
    decision = passes_through().decide(state, scaler.recommend(state), NOW)
    assert decision.target == expected, decision.reason


def rules(pods=0, pods_period=60, percent=0, percent_period=60, select="max") -> dict:
    """A direction's policies, as horizontal_test.go's generateScalingRules builds them."""
    policies = []
    if pods:
        policies.append(
            ScalingPolicy(type="nodes", value=pods, period=timedelta(seconds=pods_period))
        )
    if percent:
        policies.append(
            ScalingPolicy(type="percent", value=percent, period=timedelta(seconds=percent_period))
        )
    return {"policies": tuple(policies), "select_policy": select}


# The HPA's default behavior, which a case without rules for a direction gets.
HPA_UP = rules(pods=4, pods_period=15, percent=100, percent_period=15)
HPA_DOWN = rules(percent=100, percent_period=15)


def events(changes: list[int], period: int) -> list[tuple[float, int]]:
    """horizontal_test.go's generateEventsUniformDistribution: each change in the middle of its
    share of the last `period` seconds."""
    share = period / len(changes)
    return [(NOW - (period - share * (i + 1) + share / 2), c) for i, c in enumerate(changes)]


# (Go test: its case name, current, recommendation, min, max, up rules, down rules,
# earlier scale-ups, earlier scale-downs, expected)
W = "TestScalingWithRules: "
RATE_CASES = [
    (W + "prenormalized desired replicas within range", 5, 7, 3, 8, None, None, [], [], 7),
    (W + "prenormalized desired replicas < minReplicas", 3, 1, 2, 8, None, None, [], [], 2),
    (
        W + "maxReplicas is the limit because maxReplicas < scaleUpLimit",
        20,
        1000,
        1,
        10,
        None,
        None,
        [],
        [],
        10,
    ),
    (
        W + "scaleUpLimit is the limit because scaleUpLimit < maxReplicas with user policies",
        3,
        1000,
        1,
        2000,
        rules(percent=1),
        None,
        [],
        [],
        4,
    ),
    (W + "scaleUp with default behavior", 10, 50, 1, 1000, None, None, [], [], 20),
    (
        W + "scaleUp with pods policy larger than percent policy",
        10,
        500,
        1,
        1000,
        rules(100, 60, 100, 60),
        None,
        [],
        [],
        110,
    ),
    (
        W + "scaleUp with percent policy larger than pods policy",
        10,
        500,
        1,
        1000,
        rules(2, 60, 100, 60),
        None,
        [],
        [],
        20,
    ),
    (W + "scaleUp with pod policy limitation", 10, 50, 1, 1000, rules(30, 60), None, [], [], 40),
    (
        W + "scaleUp with percent policy limitation",
        10,
        50,
        1,
        1000,
        rules(percent=200),
        None,
        [],
        [],
        30,
    ),
    (
        W + "scaleDown with percent policy larger than pod policy",
        100,
        2,
        1,
        1000,
        None,
        rules(20, 60, 1, 60),
        [],
        [],
        80,
    ),
    (
        W + "scaleDown with pod policy larger than percent policy",
        100,
        2,
        1,
        1000,
        None,
        rules(2, 60, 1, 60),
        [],
        [],
        98,
    ),
    (
        W + "scaleDown with spec MinReplicas limitation with large percent policy",
        10,
        2,
        5,
        1000,
        None,
        rules(percent=100),
        [],
        [],
        5,
    ),
    (W + "scaleDown with pod policy limitation", 10, 2, 1, 1000, None, rules(5, 60), [], [], 5),
    (
        W + "scaleUp with spec MaxReplicas limitation with large pod policy and events",
        100,
        500,
        1,
        200,
        rules(300, 60),
        None,
        events([1, 5, 9], 120),
        [],
        200,
    ),
    (
        W + "scaleUp with currentReplicas limitation with rate.PeriodSeconds "
        "with a lot of recent scale up events",
        100,
        500,
        1,
        1000,
        rules(5, 120),
        None,
        events([1, 5, 9], 120),
        [],
        100,
    ),
    (
        W + "scaleUp with pod policy and previous scale up events",
        100,
        500,
        1,
        1000,
        rules(150, 120),
        None,
        events([1, 5, 9], 120),
        [],
        235,
    ),
    (
        W + "scaleUp with percent policy and previous scale up events",
        100,
        500,
        1,
        1000,
        rules(percent=200, percent_period=120),
        None,
        events([1, 5, 9], 120),
        [],
        255,
    ),
    (
        W + "scaleUp with percent policy and previous scale up and down events",
        6,
        24,
        1,
        1000,
        rules(percent=300, percent_period=300),
        None,
        events([4], 120),
        events([2], 120),
        16,
    ),
    (
        W + "scaleDown with pod policy limitation and previous events",
        100,
        2,
        1,
        1000,
        None,
        rules(5, 120),
        [],
        events([1, 5, 9], 120),
        100,
    ),
    (
        W + "scaleDown with percent policy limitation and previous events",
        100,
        0,
        1,
        1000,
        None,
        rules(percent=50, percent_period=120),
        [],
        events([2, 4, 6], 120),
        56,
    ),
    (
        W + "scaleDown with percent policy and previous scale up and down events",
        10,
        1,
        1,
        1000,
        None,
        rules(percent=50, percent_period=180),
        events([2], 120),
        events([4], 120),
        6,
    ),
    (
        W + "scaleDown with previous events preventing further scale down",
        100,
        0,
        1,
        1000,
        None,
        rules(percent=10, percent_period=120),
        [],
        events([10, 10, 10], 120),
        100,
    ),
    (
        W + "check that events were marked 'outdated' "
        "for two different policies in the behavior for up",
        100,
        200,
        1,
        1000,
        rules(1000, 30, 100, 60),
        None,
        events([8, 12, 9, 11], 120),
        [],
        200,
    ),
    (
        "TestCalculateScaleUpLimitWithScalingRules",
        1,
        100,
        0,
        1000,
        rules(2, 60, 50, 60, "min"),
        None,
        [],
        [],
        2,
    ),
    (
        "TestCalculateScaleDownLimitWithBehaviors",
        5,
        0,
        0,
        1000,
        None,
        rules(2, 60, 50, 60, "min"),
        [],
        [],
        3,
    ),
]


@pytest.mark.parametrize(
    ("case", "current", "recommended", "low", "high", "up", "down", "ups", "downs", "expected"),
    RATE_CASES,
    ids=[c[0] for c in RATE_CASES],
)
def test_rate_policies_limit_a_change_as_the_hpa_does(
    case, current, recommended, low, high, up, down, ups, downs, expected
):
    b = ScalingBehavior(
        PoolScalingConfig(
            scale_up=ScaleUpConfig(**(up or HPA_UP)),
            scale_down=ScaleDownConfig(
                window=timedelta(0), delay_after_scale_up=timedelta(0), **(down or HPA_DOWN)
            ),
        )
    )
    # The scale events the Go test starts with; the HPA keeps them per direction, navarch as
    # signed changes.
    b._changes.extend(sorted([*ups, *((at, -c) for at, c in downs)]))
    state = ScalingState(
        pool="p", current_nodes=current, min_nodes=low, max_nodes=high, healthy_nodes=current
    )
    decision = b.decide(state, Recommendation(target=recommended, reason="asked"), NOW)
    assert decision.target == expected, decision.reason
