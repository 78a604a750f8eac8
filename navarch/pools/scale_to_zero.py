"""Scale to zero: a pool's last node leaves only once the pool has been idle for
`scaling.scale_down.idle_timeout`.

A pool is idle while its queue is empty and none of its nodes' GPUs is busy. The queue is empty
at a depth of 0, or when the pool has no queue at all (no metrics source and no depth ever
pushed); a queue whose depth is not known is not empty. An unhealthy node's last reading is not
trusted, so it counts as idle.

Scaling up from zero needs no rule of its own: with no nodes there is no utilization, so the
autoscalers that read the queue decide alone, and the core's rules do not hold a pool at 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import timedelta

import attrs

from navarch.durations import format_duration
from navarch.model import Node
from navarch.pools.behavior import Decision
from navarch.pools.nodes import counts_toward_size, gpu_utilization, is_unhealthy
from navarch.pools.pool import PoolState


def busy(pool: PoolState, nodes: Iterable[Node]) -> str:
    """Why the pool is not idle; empty when it is."""
    if pool.queue_depth:
        return f"the queue holds {pool.queue_depth} jobs"
    if pool.queue_depth is None and (pool.config.metrics is not None or pool.queue_depth_at):
        return "the queue depth is not known"
    working = sum(
        1
        for n in nodes
        if counts_toward_size(n) and not is_unhealthy(n) and (gpu_utilization(n) or 0.0) > 0
    )
    if working == 1:
        return "1 node uses its GPUs"
    if working:
        return f"{working} nodes use their GPUs"
    return ""


def hold_last_node(
    pool: PoolState, decision: Decision, nodes: Iterable[Node], now: float
) -> Decision:
    """The round's decision, keeping the pool's last node until the pool has been idle for the
    idle timeout. Tracks since when the pool is idle; call it once a round, at trio time `now`."""
    why = busy(pool, nodes)
    if why:
        pool.idle_since = None
    elif pool.idle_since is None:
        pool.idle_since = now
    timeout = pool.config.scaling.scale_down.idle_timeout
    if not timeout or decision.target > 0 or decision.previous == 0:
        return decision
    if not why:
        assert pool.idle_since is not None
        left = pool.idle_since + timeout.total_seconds() - now
        if left <= 0:
            return decision
        left_shown = format_duration(timedelta(seconds=math.ceil(left)))
        why = f"the pool has been idle for {format_duration(timeout)} ({left_shown} left)"
        rule = "the last node leaves once"
    else:
        rule = "the last node stays while"
    verb = "held at" if decision.previous == 1 else "limited to"
    return attrs.evolve(decision, target=1, reasons=(*decision.reasons, f"{verb} 1: {rule} {why}"))
