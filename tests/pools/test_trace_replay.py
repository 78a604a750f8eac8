"""Replays a recorded utilization trace through `target` and the core's scaling behavior.

The trace records a training pool's work every 30 seconds for half an hour, in busy-node
equivalents: a warm-up, a burst, a decline, a quiet night with one short spike, and a morning.
The utilization a round sees is that work spread over the pool's size at the time, as the
daemons' heartbeats would report it, so the pool's own decisions feed back into what it sees.

The expected size at each step comes from a reference loop written from the Kubernetes HPA
documentation (formula, tolerance, scale-down stabilization window, a Pods scale-up policy), in
exact fractions, without calling navarch's code.
"""

from __future__ import annotations

import csv
import math
from datetime import timedelta
from fractions import Fraction
from pathlib import Path

from navarch.config import PoolScalingConfig, ScaleDownConfig, ScaleUpConfig
from navarch.plugins import ScalingState
from navarch.plugins.builtin.autoscalers import TargetAutoscaler, TargetSettings
from navarch.pools.behavior import ScalingBehavior

TRACE = Path(__file__).parent / "data" / "utilization_trace.csv"

START, MIN, MAX = 4, 2, 16
TARGET, TOLERANCE = "60", "0.1"
DOWN_WINDOW = 300  # seconds
UP_NODES, UP_PERIOD = 2, 60  # at most 2 nodes added per 60 seconds


def read_trace() -> list[tuple[int, str]]:
    with TRACE.open() as f:
        return [(int(row["seconds"]), row["busy_nodes"]) for row in csv.DictReader(f)]


def utilization(busy: str, nodes: int) -> Fraction:
    """Mean utilization as heartbeats report it: percent, one decimal, at most 100."""
    return min(Fraction(100), round(Fraction(busy) * 100 / nodes, 1))


def hpa_reference(trace: list[tuple[int, str]]) -> list[int]:
    replicas = START
    recommendations: list[tuple[int, int]] = []  # (time, desired replicas)
    sizes: list[tuple[int, int]] = []  # (time, replicas after a change)
    out = []
    for now, busy in trace:
        value = utilization(busy, replicas)
        # desiredReplicas = ceil(currentReplicas * currentMetricValue / desiredMetricValue),
        # skipped while the ratio is within the tolerance of 1.0.
        ratio = value / Fraction(TARGET)
        within = abs(ratio - 1) <= Fraction(TOLERANCE)
        desired = replicas if within else math.ceil(replicas * ratio)
        desired = max(MIN, min(MAX, desired))
        # Scale-down stabilization: the highest recommendation within the window.
        in_window = [d for t, d in recommendations if t > now - DOWN_WINDOW]
        recommendations.append((now, desired))
        if desired < replicas:
            desired = min(replicas, max([desired, *in_window]))
        # Pods policy: replicas at the start of the period plus the policy's value.
        if desired > replicas:
            at_start = START
            for t, size in sizes:
                if t <= now - UP_PERIOD:
                    at_start = size
            desired = min(desired, max(at_start + UP_NODES, replicas))
        if desired != replicas:
            sizes.append((now, desired))
        replicas = desired
        out.append(replicas)
    return out


def test_target_autoscaler_replays_the_trace_like_the_hpa():
    trace = read_trace()
    assert len(trace) == 60
    expected = hpa_reference(trace)

    scaler = TargetAutoscaler(TargetSettings(target_value=60.0, tolerance=0.1))
    behavior = ScalingBehavior(
        PoolScalingConfig(
            scale_up=ScaleUpConfig(
                window=timedelta(0), nodes=UP_NODES, percent=0.0, period=timedelta(seconds=60)
            ),
            scale_down=ScaleDownConfig(
                window=timedelta(seconds=DOWN_WINDOW),
                percent=100.0,
                delay_after_scale_up=timedelta(0),
            ),
        )
    )
    current = START
    reasons = []
    for step, (now, busy) in enumerate(trace):
        value = utilization(busy, current)
        state = ScalingState(
            pool="train",
            current_nodes=current,
            min_nodes=MIN,
            max_nodes=MAX,
            healthy_nodes=current,
            utilization=float(value),
        )
        decision = behavior.decide(state, scaler.recommend(state), float(now))
        assert decision.target == expected[step], (step, now, value, decision.reason)
        reasons.append(decision.reason)
        current = decision.target

    # The trace exercises every rule the reference models.
    assert any("within 10% of the target" in r for r in reasons)
    assert any("by the scale-down window" in r for r in reasons)
    assert any("by the scale-up rate" in r for r in reasons)
    assert any("raised to min_nodes" in r for r in reasons)
    assert max(expected) > START and min(expected) == MIN
