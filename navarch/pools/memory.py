"""What a pool's scaling decisions depend on, kept across a restart.

A restarted control plane that forgot a pool's recent recommendations would scale down at once
where the old one held the pool by its scale-down window; one that forgot the rate limits' changes
would allow a second step within the period; one that forgot a ScalePool floor would let the
autoscaler shrink the pool below what an operator asked for. Each round the pool manager stores
the pool's memory (`navarch.store.DecisionState`, scope `pool.scaling`), with the round's event
when it records one, and the floor with its `pool.manual_target` event; at start it takes the
memory back.

Times are wall-clock times here, converted from and to trio's time, which starts over with every
process.
"""

from __future__ import annotations

from datetime import datetime

from attrs import frozen

from navarch.clock import Clock
from navarch.pools.pool import PoolState
from navarch.store import DecisionState, decisions

SCALING = "pool.scaling"


@frozen(kw_only=True)
class Sample:
    at: datetime
    value: int


@frozen(kw_only=True)
class ScalingMemory:
    # The ScalePool floor; None when no operator set one.
    manual_target: int | None = None
    # Recommendations after the min/max clamp, for the stabilization windows.
    recommendations: tuple[Sample, ...] = ()
    # Nodes added (positive) or removed, for the rate limits.
    changes: tuple[Sample, ...] = ()
    last_scale_up: datetime | None = None
    # Since when the pool has been idle (scale to zero).
    idle_since: datetime | None = None
    # The last queue depth reported or read, and when: the autoscaler's input, kept so that the
    # first round after a restart does not hold the pool for want of it.
    queue_depth: int | None = None
    queue_depth_at: datetime | None = None


def remember(pool: PoolState, clock: Clock) -> DecisionState:
    """The pool's memory now, to store."""
    recommendations, changes, last_up = pool.behavior.windows()
    # A recommendation that a later one equals leaves the window first and never sets its
    # highest or lowest value alone: the stored windows stay short for a steady pool.
    kept = [
        (at, value)
        for i, (at, value) in enumerate(recommendations)
        if all(later != value for _, later in recommendations[i + 1 :])
    ]
    memory = ScalingMemory(
        manual_target=pool.manual_target,
        recommendations=tuple(Sample(at=_wall(clock, at), value=v) for at, v in kept),
        changes=tuple(Sample(at=_wall(clock, at), value=v) for at, v in changes),
        last_scale_up=None if last_up is None else _wall(clock, last_up),
        idle_since=None if pool.idle_since is None else _wall(clock, pool.idle_since),
        queue_depth=pool.queue_depth,
        queue_depth_at=None if pool.queue_depth_time is None else pool.queue_depth_at,
    )
    return decisions.state(SCALING, pool.name, memory, clock.now())


def restore(pool: PoolState, memory: ScalingMemory, clock: Clock) -> None:
    pool.manual_target = memory.manual_target
    pool.behavior.restore(
        [(_trio(clock, s.at), s.value) for s in memory.recommendations],
        [(_trio(clock, s.at), s.value) for s in memory.changes],
        None if memory.last_scale_up is None else _trio(clock, memory.last_scale_up),
    )
    pool.idle_since = None if memory.idle_since is None else _trio(clock, memory.idle_since)
    if memory.queue_depth_at is not None:
        pool.queue_depth, pool.queue_depth_at = memory.queue_depth, memory.queue_depth_at
        pool.queue_depth_time = _trio(clock, memory.queue_depth_at)


def _wall(clock: Clock, at: float) -> datetime:
    return decisions.wall_time(clock, at)


def _trio(clock: Clock, at: datetime) -> float:
    return decisions.trio_time(clock, at)
