"""The fleet summary that the dashboard's fleet page shows: the fleet now and over the last 6 h.

Everything but the recent events and the breakers' times is in memory: the node book, the open
remediation episodes and the history rings (`navarch.controlplane.history`). The store answers the
newest events, and when a breaker is open, when it opened. The nodes are counted afresh; the pools
are as the history's latest point has them, at most 15 s old, since describing every pool walks
every node once per pool.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from datetime import datetime

from attrs import frozen

from navarch.controlplane.history import FleetCounts, History, PoolPoint
from navarch.controlplane.remediation import Remediator
from navarch.model import Event, RemediationStep
from navarch.store import Store

RECENT_EVENTS = 20


@frozen(kw_only=True)
class BreakerState:
    """A pool's circuit breaker, and whether remediation is paused for the pool."""

    pool: str
    open: bool
    # Why it opened, and when; empty while it is closed (`since` None when the store lost it).
    reason: str = ""
    since: datetime | None = None
    paused: bool = False


@frozen(kw_only=True)
class FleetSummary:
    now: FleetCounts
    # Open episodes (held ones included) by step, only the steps that have some.
    steps: Mapping[RemediationStep, int]
    # Remediation is paused for every pool.
    paused: bool
    breakers: tuple[BreakerState, ...]
    # Each pool's latest history point, by pool name.
    pools: Mapping[str, PoolPoint]
    recent_events: tuple[Event, ...]
    history: tuple[FleetCounts, ...]


async def fleet_summary(
    store: Store,
    history: History,
    remediation: Remediator,
    history_after: datetime | None,
) -> FleetSummary:
    """The summary now, with the history points after `history_after` (all for None)."""
    now = history.count()
    steps = collections.Counter(e.step for e in remediation.open_episodes())
    events = await store.list_events(node_id="", kinds=(), limit=RECENT_EVENTS, before="")
    return FleetSummary(
        now=now,
        steps={step: steps[step] for step in RemediationStep if steps[step]},
        paused=remediation.switches.paused,
        breakers=await _breakers(store, remediation),
        pools=history.pools_now(),
        recent_events=tuple(events),
        history=tuple(history.fleet(history_after)),
    )


async def _breakers(store: Store, remediation: Remediator) -> tuple[BreakerState, ...]:
    opened = dict(remediation.switches.open_breakers)
    since: dict[str, datetime] = {}
    if opened:
        switches = await store.remediation_switches()
        since = {s.pool: s.since for s in switches if s.kind == "breaker"}
    paused = remediation.switches.paused_pools
    names = sorted({*remediation.pool_names(), *opened, *paused})
    return tuple(
        BreakerState(
            pool=name,
            open=name in opened,
            reason=opened.get(name, ""),
            since=since.get(name) if name in opened else None,
            paused=name in paused,
        )
        for name in names
    )
