"""Built-in autoscalers.

Each one is a pure function of the pool's ScalingState. The core applies the same scaling
behavior to all of them afterwards (navarch.pools.behavior): min/max clamp, stabilization
windows, rate limits, the delay after a scale-up, and the healthy-node floor. So an autoscaler
says what the pool needs now and leaves pacing to the core.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
from attrs import field, frozen

from navarch.plugins import (
    Autoscaler,
    ConfigValueError,
    PluginTable,
    Recommendation,
    Register,
    ScalingState,
    ask,
    hookimpl,
    validators,
)
from navarch.plugins.builtin.schedule import ScheduleWindow, active_window

# Float noise must not turn an exact boundary (a ratio of exactly 1.1) into a change.
_EPSILON = 1e-9


def _hold(state: ScalingState, reason: str) -> Recommendation:
    return Recommendation(target=state.current_nodes, reason=reason)


@frozen(kw_only=True)
class ReactiveSettings:
    scale_up_at: float = field(default=80.0, validator=validators.percent)
    scale_down_at: float = field(default=20.0, validator=validators.percent)
    step: int = field(default=1, validator=validators.at_least(1))

    @scale_down_at.validator
    def _below_up(self, _attribute: attrs.Attribute[float], value: float) -> None:
        if value >= self.scale_up_at:
            raise ConfigValueError(
                f"scale_down_at: expected less than scale_up_at ({self.scale_up_at:g}), "
                f"got {value:g}"
            )


class ReactiveAutoscaler:
    """Adds `step` nodes above `scale_up_at` percent GPU use; removes them below `scale_down_at`.

    Comparisons are strict, so a pool sitting exactly on a threshold holds its size.
    """

    Settings = ReactiveSettings

    def __init__(self, settings: ReactiveSettings) -> None:
        self.settings = settings

    def recommend(self, state: ScalingState) -> Recommendation:
        s = self.settings
        util = state.utilization
        if util is None:
            return _hold(state, "no utilization reported")
        if util > s.scale_up_at:
            return Recommendation(
                target=state.current_nodes + s.step,
                reason=f"utilization {util:.1f}% is above {s.scale_up_at:g}%",
            )
        if util < s.scale_down_at:
            return Recommendation(
                target=state.current_nodes - s.step,
                reason=f"utilization {util:.1f}% is below {s.scale_down_at:g}%",
            )
        return _hold(
            state, f"utilization {util:.1f}% is within {s.scale_down_at:g}-{s.scale_up_at:g}%"
        )


@frozen(kw_only=True)
class TargetSettings:
    # "utilization": mean GPU utilization, target in percent. "queue_depth": jobs per node.
    metric: str = field(
        default="utilization", validator=validators.one_of("utilization", "queue_depth")
    )
    target_value: float = field(default=70.0)
    # No change while the metric is within this fraction of the target (HPA's default is 0.1).
    tolerance: float = field(default=0.1)

    @target_value.validator
    def _check_target(self, _attribute: attrs.Attribute[float], value: float) -> None:
        if self.metric == "utilization" and not 0 < value <= 100:
            raise ConfigValueError(
                f"target_value: expected a percent above 0 and at most 100, got {value:g}"
            )
        if value <= 0:
            raise ConfigValueError(f"target_value: expected a number above 0, got {value:g}")

    @tolerance.validator
    def _check_tolerance(self, _attribute: attrs.Attribute[float], value: float) -> None:
        if not 0 <= value < 1:
            raise ConfigValueError(
                f"tolerance: expected a fraction from 0 up to (not including) 1, got {value:g}"
            )


class TargetAutoscaler:
    """Keeps a metric at its target, as the Kubernetes HPA's replica calculator does.

    desired = ceil(nodes * value / target), unchanged while |value / target - 1| is within the
    tolerance. For utilization, `nodes` are the nodes that report it, and nodes that do not are
    counted the HPA's conservative way (see `_utilization`); for queue depth, the value is jobs
    per node of the whole pool.
    """

    Settings = TargetSettings

    def __init__(self, settings: TargetSettings) -> None:
        self.settings = settings

    def recommend(self, state: ScalingState) -> Recommendation:
        if self.settings.metric == "utilization":
            return self._utilization(state)
        return self._queue_depth(state)

    def _within(self, ratio: float) -> bool:
        return abs(ratio - 1) <= self.settings.tolerance + _EPSILON

    def _utilization(self, state: ScalingState) -> Recommendation:
        """GetResourceReplicas of the HPA, with nodes for pods.

        A registered node without metrics is the HPA's missing pod, an instance in flight its
        unready pod. They are left out of the first estimate. If it is a scale-down, silent nodes
        then count as fully busy and in-flight ones stay out; if it is a scale-up, both count as
        idle. When that assumption moves the estimate into the tolerance, or turns it around,
        the pool holds.
        """
        s = self.settings
        readings = state.node_readings
        reported = [r for r in readings if r is not None]
        if not reported:
            return _hold(state, "no utilization reported")
        silent = len(readings) - len(reported)
        booting = state.in_flight
        mean = sum(reported) / len(reported)
        ratio = mean / s.target_value
        goal = f"{s.target_value:g}%"
        shown = f"utilization {mean:.1f}%"
        with_booting = booting > 0 and ratio > 1
        if not with_booting and silent == 0:
            if self._within(ratio):
                return _hold(state, f"{shown} is within {s.tolerance:.0%} of the target {goal}")
            return Recommendation(
                target=math.ceil(len(reported) * ratio - _EPSILON),
                reason=f"{shown} is {ratio:.2f} times the target {goal}",
            )

        values = list(reported)
        assumed = []
        if silent and ratio != 1:
            # GPU utilization is a resource utilization: a silent node counts as 100 % of its
            # GPUs, as the HPA counts a missing pod at 100 % of its request.
            busy = 100.0 if ratio < 1 else 0.0
            values += [busy] * silent
            assumed.append(f"{silent} without metrics at {busy:g}%")
        if with_booting:
            values += [0.0] * booting
            assumed.append(f"{booting} in flight at 0%")
        adjusted = sum(values) / len(values) / s.target_value
        shown = f"{shown} is {ratio:.2f} times the target {goal}"
        if assumed:
            shown += f"; counting {' and '.join(assumed)}, {adjusted:.2f} times"
        if self._within(adjusted):
            return _hold(state, f"{shown}, within {s.tolerance:.0%}")
        if (ratio < 1) != (adjusted < 1):
            return _hold(state, f"{shown}, which turns the direction around")
        needed = math.ceil(len(values) * adjusted - _EPSILON)
        if (adjusted < 1 and needed > state.current_nodes) or (
            adjusted > 1 and needed < state.current_nodes
        ):
            return _hold(state, f"{shown}, but {needed} nodes would scale the other way")
        return Recommendation(target=needed, reason=shown)

    def _queue_depth(self, state: ScalingState) -> Recommendation:
        s = self.settings
        if state.queue_depth is None:
            return _hold(state, "no queue depth reported")
        goal = f"{s.target_value:g} jobs per node"
        if state.current_nodes == 0:
            needed = math.ceil(state.queue_depth / s.target_value - _EPSILON)
            return Recommendation(
                target=needed, reason=f"queue depth {state.queue_depth} at {goal}"
            )
        nodes = state.current_nodes
        ratio = state.queue_depth / nodes / s.target_value
        shown = f"queue depth {state.queue_depth} ({state.queue_depth / nodes:.1f} per node)"
        if self._within(ratio):
            return _hold(state, f"{shown} is within {s.tolerance:.0%} of the target {goal}")
        return Recommendation(
            target=math.ceil(nodes * ratio - _EPSILON),
            reason=f"{shown} is {ratio:.2f} times the target {goal}",
        )


@frozen(kw_only=True)
class QueueSettings:
    jobs_per_node: int = field(default=10, validator=validators.at_least(1))


class QueueAutoscaler:
    """Sizes the pool to its queue: ceil(queue depth / jobs per node).

    It reads no node, so a pool at 0 nodes grows as soon as jobs wait, and an empty queue asks
    for 0 nodes. Without a queue depth the pool holds its size; an empty report is not an empty
    queue.
    """

    Settings = QueueSettings

    def __init__(self, settings: QueueSettings) -> None:
        self.settings = settings

    def recommend(self, state: ScalingState) -> Recommendation:
        if state.queue_depth is None:
            return _hold(state, "no queue depth reported")
        per_node = self.settings.jobs_per_node
        needed = math.ceil(state.queue_depth / per_node)
        return Recommendation(
            target=needed,
            reason=f"queue depth {state.queue_depth} needs {needed} nodes at {per_node} per node",
        )


def _check_zone(_inst: object, attribute: attrs.Attribute[str], value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigValueError(
            f'{attribute.name}: expected an IANA time zone such as "Europe/Berlin", got "{value}"'
        ) from None


@frozen(kw_only=True)
class ScheduledSettings:
    windows: tuple[ScheduleWindow, ...] = field(validator=validators.not_empty("window"))
    timezone: str = field(default="UTC", validator=_check_zone)
    # The autoscaler that sizes the pool within the active window's bounds; without one the pool
    # holds its size, moved into those bounds.
    base: PluginTable | None = None


class ScheduledAutoscaler:
    """Sets the pool's bounds by day and hour; the first active window wins.

    Outside every window the pool's own min_nodes and max_nodes apply.
    """

    Settings = ScheduledSettings

    def __init__(self, settings: ScheduledSettings) -> None:
        self.settings = settings
        self.zone = ZoneInfo(settings.timezone)
        self.base = settings.base.create(Autoscaler) if settings.base is not None else None

    def recommend(self, state: ScalingState) -> Recommendation:
        window = active_window(self.settings.windows, state.now, self.zone) if state.now else None
        low, high = state.min_nodes, state.max_nodes
        if window is not None:
            low = window.min_nodes if window.min_nodes is not None else low
            high = window.max_nodes if window.max_nodes is not None else high
            high = max(high, low)
            where = f"window {window.describe()} {self.settings.timezone}: {low}-{high} nodes"
        elif state.now is None:
            where = f"no time given: {low}-{high} nodes"
        else:
            where = f"outside the schedule: {low}-{high} nodes"
        if self.base is None:
            answer = Recommendation(target=state.current_nodes, reason="holding")
        else:
            answer = ask(self.base, attrs.evolve(state, min_nodes=low, max_nodes=high))
        target = min(max(answer.target, low), high)
        reason = f"{where}; {answer.reason}"
        if target != answer.target:
            reason += f" → {answer.target}, moved into {low}-{high}"
        return Recommendation(target=target, reason=reason)


@frozen(kw_only=True)
class PredictiveSettings:
    # Utilization samples (one per scaling round) that the trend is fitted to.
    lookback: int = field(default=10, validator=validators.at_least(2))
    # Rounds ahead that the trend is projected.
    horizon: int = field(default=5, validator=validators.at_least(1))
    target_utilization: float = field(default=70.0)
    # The autoscaler whose answer the prediction can only raise; without one, the current size.
    base: PluginTable | None = None

    @target_utilization.validator
    def _check_target(self, _attribute: attrs.Attribute[float], value: float) -> None:
        if not 0 < value <= 100:
            raise ConfigValueError(
                f"target_utilization: expected a percent above 0 and at most 100, got {value:g}"
            )


class PredictiveAutoscaler:
    """Raises the pool ahead of a rising utilization trend; never lowers it.

    A least-squares line through the last `lookback` samples is projected `horizon` rounds ahead;
    the nodes that the projected utilization needs at `target_utilization` become a floor under
    the base autoscaler's answer.
    """

    Settings = PredictiveSettings

    def __init__(self, settings: PredictiveSettings) -> None:
        self.settings = settings
        self.base = settings.base.create(Autoscaler) if settings.base is not None else None

    def recommend(self, state: ScalingState) -> Recommendation:
        s = self.settings
        if self.base is None:
            base = Recommendation(target=state.current_nodes, reason="holding")
        else:
            base = ask(self.base, state)
        samples = state.history[-s.lookback :]
        if len(samples) < s.lookback:
            return Recommendation(
                target=base.target,
                reason=f"{base.reason} (prediction needs {s.lookback} samples, has {len(samples)})",
            )
        if state.registered_nodes == 0:
            return Recommendation(
                target=base.target, reason=f"{base.reason} (no node reports utilization)"
            )
        slope, predicted = _project(samples, s.horizon)
        needed = math.ceil(state.registered_nodes * predicted / s.target_utilization - _EPSILON)
        if needed <= base.target:
            return Recommendation(
                target=base.target, reason=f"{base.reason} (prediction needs {needed})"
            )
        return Recommendation(
            target=needed,
            reason=(
                f"utilization trend {slope:+.1f} points per round predicts {predicted:.1f}% in "
                f"{s.horizon} rounds, which needs {needed} nodes at {s.target_utilization:g}%"
            ),
        )


def _project(samples: Sequence[float], horizon: int) -> tuple[float, float]:
    """The least-squares slope per sample, and the line's value `horizon` samples past the last."""
    n = len(samples)
    mean_x = (n - 1) / 2
    mean_y = sum(samples) / n
    spread = sum((x - mean_x) ** 2 for x in range(n))
    slope = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(samples)) / spread
    return slope, max(mean_y + slope * (n - 1 + horizon - mean_x), 0.0)


@frozen(kw_only=True)
class CompositeSettings:
    members: tuple[PluginTable, ...] = field(validator=validators.not_empty("autoscaler table"))
    mode: str = field(default="max", validator=validators.one_of("max", "min", "average"))


class CompositeAutoscaler:
    """Combines member autoscalers: the highest, the lowest, or the average (rounded up).

    A pool with no nodes takes the highest answer whatever the mode: members that read
    utilization have nothing to read there and hold at 0, so the lowest or the average would
    keep the pool at 0 however long its queue. A member that fails is left out, and the reason
    says so.
    """

    Settings = CompositeSettings

    def __init__(self, settings: CompositeSettings) -> None:
        self.settings = settings
        self.members = [(table.type, table.create(Autoscaler)) for table in settings.members]

    def recommend(self, state: ScalingState) -> Recommendation:
        answers: list[tuple[str, Recommendation]] = []
        failures: list[str] = []
        for name, member in self.members:
            try:
                answers.append((name, member.recommend(state)))
            except Exception as exc:
                failures.append(f"{name} failed ({type(exc).__name__}: {exc})")
        if not answers:
            return _hold(state, "every member failed: " + "; ".join(failures))
        targets = [a.target for _, a in answers]
        mode = self.settings.mode
        shown = mode
        if state.current_nodes == 0 and mode != "max":
            mode, shown = "max", f"max (no nodes, so not the {mode})"
        if mode == "max":
            target = max(targets)
        elif mode == "min":
            target = min(targets)
        else:
            target = math.ceil(sum(targets) / len(targets))
        parts = [f"{name}: {a.reason} → {a.target}" for name, a in answers] + failures
        return Recommendation(target=target, reason=f"{shown} of [{'; '.join(parts)}]")


@hookimpl
def navarch_autoscalers(register: Register) -> None:
    register("reactive", ReactiveAutoscaler)
    register("target", TargetAutoscaler)
    register("queue", QueueAutoscaler)
    register("scheduled", ScheduledAutoscaler)
    register("predictive", PredictiveAutoscaler)
    register("composite", CompositeAutoscaler)
