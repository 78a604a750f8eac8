"""Scaling behavior: how the core turns any autoscaler's recommendation into a pool's target.

The same rules hold for every autoscaler, built in or not, in this order:

1. Clamp the recommendation to the pool's `min_nodes` and `max_nodes`.
2. Stabilize it (Kubernetes HPA): scale down only as far as the highest recommendation of the
   scale-down window, scale up only as far as the lowest recommendation of the scale-up window.
3. Hold any scale-down until `delay_after_scale_up` has passed since the pool last grew
   (Cluster Autoscaler's scale-down-delay-after-add).
4. Limit the change to the rate its policies allow, each over its own period (HPA policies;
   `select_policy` takes the largest allowance, the smallest, or none).
5. Raise the target so that the pool holds `min_nodes` healthy nodes, counting instances still
   being provisioned, and never beyond `max_nodes`.

A pool that is outside its bounds (its configuration changed) skips steps 2 to 4 and moves
straight into them, as the HPA does. Time is passed in by the caller (`trio.current_time()`),
so the rules run the same under trio's MockClock and in the simulator. The windows outlive a
restart: the pool manager stores them each round (`navarch.pools.memory`) and gives them back at
start (`windows`, `restore`).
"""

from __future__ import annotations

import math
from collections import deque
from datetime import timedelta

from attrs import frozen

from navarch.config import PoolScalingConfig, ScaleDownConfig, ScaleUpConfig
from navarch.durations import format_duration
from navarch.plugins import Recommendation, ScalingState

# Float noise must not turn an exact boundary (a ratio of exactly 1.1) into a change.
_EPSILON = 1e-9


@frozen(kw_only=True)
class Decision:
    """One scaling round's outcome, with the reason for every change to the number."""

    pool: str
    previous: int
    # What the autoscaler asked for, before the core's rules; None when the pool has none.
    recommended: int | None
    target: int
    reasons: tuple[str, ...]
    at: float

    @property
    def change(self) -> int:
        return self.target - self.previous

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


class ScalingBehavior:
    """The memory that the rules need for one pool: recent recommendations and changes.

    The pool's scaling loop owns one and calls `decide` once a round.
    """

    def __init__(self, settings: PoolScalingConfig | None = None) -> None:
        self.settings = settings or PoolScalingConfig()
        # (time, recommendation after the min/max clamp), for the stabilization windows.
        self._recommendations: deque[tuple[float, int]] = deque()
        # (time, nodes added or removed), for the rate limits.
        self._changes: deque[tuple[float, int]] = deque()
        self._last_scale_up: float | None = None

    def decide(
        self, state: ScalingState, recommendation: Recommendation | None, now: float
    ) -> Decision:
        """The pool's target for this round.

        The change is remembered as made (for the rate limits and the delay after a scale-up),
        so call this once per round and act on the target.
        """
        previous = state.current_nodes
        low, high = state.min_nodes, state.max_nodes
        reasons: list[str] = []

        if recommendation is None:
            recommended = None
            target = previous
            reasons.append(f"no autoscaler; holding {previous}")
        else:
            recommended = recommendation.target
            target = recommendation.target
            reasons.append(f"{recommendation.reason} → {target}")
        if target > high:
            target = high
            reasons.append(f"clamped to max_nodes {high}")
        elif target < low:
            target = low
            reasons.append(f"raised to min_nodes {low}")

        clamped = target
        if low <= previous <= high:
            target = self._stabilize(target, previous, now, reasons)
            target = self._delay(target, previous, now, reasons)
            target = self._limit_rate(target, previous, now, reasons)
        self._recommendations.append((now, clamped))

        floor = self._healthy_floor(state)
        if target < floor:
            target = floor
            reasons.append(
                f"raised to {floor} to hold {low} healthy nodes "
                f"({state.healthy_nodes} healthy, {state.in_flight} provisioning)"
            )

        if target != previous:
            self._changes.append((now, target - previous))
            if target > previous:
                self._last_scale_up = now
        self._forget(now)
        return Decision(
            pool=state.pool,
            previous=previous,
            recommended=recommended,
            target=target,
            reasons=tuple(reasons),
            at=now,
        )

    def windows(self) -> tuple[list[tuple[float, int]], list[tuple[float, int]], float | None]:
        """(time, recommendation) of the stabilization windows, (time, change) of the rate
        limits, and the time of the last scale-up; times are trio's."""
        return list(self._recommendations), list(self._changes), self._last_scale_up

    def restore(
        self,
        recommendations: list[tuple[float, int]],
        changes: list[tuple[float, int]],
        last_scale_up: float | None,
    ) -> None:
        """Takes back what `windows` gave out, in this process's trio time."""
        self._recommendations = deque(recommendations)
        self._changes = deque(changes)
        self._last_scale_up = last_scale_up

    def _stabilize(self, target: int, previous: int, now: float, reasons: list[str]) -> int:
        up_window = self.settings.scale_up.window.total_seconds()
        down_window = self.settings.scale_down.window.total_seconds()
        lowest = highest = target
        for at, value in self._recommendations:
            # Strictly inside the window, as the HPA counts it.
            if at > now - up_window:
                lowest = min(lowest, value)
            if at > now - down_window:
                highest = max(highest, value)
        stabilized = min(max(previous, lowest), highest)
        if stabilized > target:
            verb = "held at" if stabilized == previous else "limited to"
            reasons.append(
                f"{verb} {stabilized} by the scale-down window "
                f"(highest recommendation in the last {_show(self.settings.scale_down.window)})"
            )
        elif stabilized < target:
            verb = "held at" if stabilized == previous else "limited to"
            reasons.append(
                f"{verb} {stabilized} by the scale-up window "
                f"(lowest recommendation in the last {_show(self.settings.scale_up.window)})"
            )
        return stabilized

    def _delay(self, target: int, previous: int, now: float, reasons: list[str]) -> int:
        delay = self.settings.scale_down.delay_after_scale_up
        if target >= previous or self._last_scale_up is None:
            return target
        left = self._last_scale_up + delay.total_seconds() - now
        if left <= 0:
            return target
        reasons.append(
            f"held at {previous}: scale-down waits {_show(delay)} after a scale-up "
            f"({_show(timedelta(seconds=math.ceil(left)))} left)"
        )
        return previous

    def _limit_rate(self, target: int, previous: int, now: float, reasons: list[str]) -> int:
        if target > previous:
            up = self.settings.scale_up
            limit = max(self._rate_limit(up, previous, now, +1), previous)
            if target > limit:
                verb = "held at" if limit == previous else "limited to"
                reasons.append(f"{verb} {limit} by the scale-up rate ({_rate(up)})")
                return limit
        elif target < previous:
            down = self.settings.scale_down
            limit = min(self._rate_limit(down, previous, now, -1), previous)
            if target < limit:
                verb = "held at" if limit == previous else "limited to"
                reasons.append(f"{verb} {limit} by the scale-down rate ({_rate(down)})")
                return limit
        return target

    def _rate_limit(
        self, rules: ScaleUpConfig | ScaleDownConfig, previous: int, now: float, sign: int
    ) -> int:
        """The furthest size the direction's policies allow (HPA's calculateScaleUpLimit and
        calculateScaleDownLimit): each policy counts from the pool's size at the start of its
        own period, and select_policy picks the largest change, the smallest, or none."""
        if rules.select_policy == "disabled" or not rules.rates:
            return previous
        proposals = []
        for policy in rules.rates:
            start = self._period_start(previous, policy.period, now)
            if policy.type == "nodes":
                proposals.append(start + sign * int(policy.value))
            elif sign > 0:
                # Rounded up, or a small pool could never grow by a percentage.
                proposals.append(math.ceil(start * (100 + policy.value) / 100 - _EPSILON))
            else:
                proposals.append(math.floor(start * (100 - policy.value) / 100 + _EPSILON))
        most = max if (sign > 0) == (rules.select_policy == "max") else min
        return most(proposals)

    def _period_start(self, previous: int, period: timedelta, now: float) -> int:
        """The pool's size at the start of the period, from the changes made within it."""
        cutoff = now - period.total_seconds()
        return previous - sum(change for at, change in self._changes if at > cutoff)

    @staticmethod
    def _healthy_floor(state: ScalingState) -> int:
        # Unhealthy nodes stay in current_nodes until remediation removes them, so a shortfall of
        # healthy nodes is added on top of the current size.
        missing = state.min_nodes - state.healthy_nodes - state.in_flight
        floor = state.current_nodes + missing if missing > 0 else state.min_nodes
        return min(floor, state.max_nodes)

    def _forget(self, now: float) -> None:
        s = self.settings
        keep = max(s.scale_up.window, s.scale_down.window).total_seconds()
        while self._recommendations and self._recommendations[0][0] <= now - keep:
            self._recommendations.popleft()
        periods = [p.period for p in (*s.scale_up.rates, *s.scale_down.rates)]
        keep = max(periods, default=timedelta(0)).total_seconds()
        while self._changes and self._changes[0][0] <= now - keep:
            self._changes.popleft()


def _show(value: timedelta) -> str:
    return format_duration(value)


def _rate(rules: ScaleUpConfig | ScaleDownConfig) -> str:
    if rules.select_policy == "disabled":
        return "select_policy disabled"
    policies = rules.rates
    if not policies:
        return f"at most no change per {_show(rules.period)}"
    parts = [
        f"{p.value:g} node" + ("" if p.value == 1 else "s")
        if p.type == "nodes"
        else f"{p.value:g}%"
        for p in policies
    ]
    joiner = " or " if rules.select_policy == "max" else " and "
    periods = {p.period for p in policies}
    if len(periods) == 1:
        return f"at most {joiner.join(parts)} per {_show(policies[0].period)}"
    return "at most " + joiner.join(
        f"{part} per {_show(p.period)}" for part, p in zip(parts, policies, strict=True)
    )
