"""The switches that stop remediation: an operator's pauses and each pool's circuit breaker.

An operator pauses remediation everywhere or in one pool; a paused episode waits at its next step
until the pause is lifted. The circuit breaker guards each pool: when more than `breaker_percent`
of a pool enters remediation within `breaker_window`, the breaker opens, the episode that would
cross the line is held, and no episode starts in that pool until an operator resets the breaker.
A zone that dies all at once is an outage to investigate, not a reason to terminate the zone.

Each switch is stored (`RemediationSwitch`) with the event that flips it, and the episodes within
a pool's window are stored with each start (`navarch.controlplane.memory`), so a restart neither
lifts a switch nor starts a window over.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import trio

from navarch.config import PoolHealthConfig
from navarch.controlplane import memory
from navarch.controlplane.book import NodeBook
from navarch.controlplane.memory import BREAKER, BreakerWindow
from navarch.durations import format_duration
from navarch.errors import Conflict
from navarch.model import Event, Node, NodeStatus, RemediationControls
from navarch.store import Change, DecisionState, RemediationSwitch, StoredState, decisions

ACTOR = "remediation"


class Switches:
    """Owns the pauses, the open breakers and the breakers' windows."""

    def __init__(self, book: NodeBook, settings: Callable[[str], PoolHealthConfig]) -> None:
        self._book = book
        self._settings = settings
        self.paused = False
        self.paused_pools: set[str] = set()
        # pool -> why its breaker opened
        self.open_breakers: dict[str, str] = {}
        # pool -> (trio time, node id) of the episodes started within the breaker window
        self._starts: dict[str, list[tuple[float, str]]] = {}
        self._changed = trio.Event()

    def load(self, state: StoredState) -> None:
        for switch in state.remediation_switches:
            if switch.kind == "pause" and not switch.pool:
                self.paused = True
            elif switch.kind == "pause":
                self.paused_pools.add(switch.pool)
            elif switch.kind == "breaker":
                self.open_breakers[switch.pool] = switch.reason
        clock, location = self._book.clock, self._book.store.location
        for pool, window in decisions.decode(state.decisions, BREAKER, BreakerWindow, location):
            self._starts[pool] = memory.breaker_starts(clock, window)

    def controls(self) -> RemediationControls:
        return RemediationControls(
            paused=self.paused,
            paused_pools=tuple(sorted(self.paused_pools)),
            open_breakers=tuple(sorted(self.open_breakers)),
        )

    async def wait_unpaused(self, pool: str) -> None:
        while self.paused or pool in self.paused_pools:
            await self._changed.wait()

    def admit(self, node: Node, now: datetime) -> tuple[str, Change]:
        """Counts `node` as entering remediation in its pool. Returns why its episode is held (""
        when it may start) and what to store with the episode: the pool's window, and the breaker
        with its event when this start opens it."""
        pool = node.pool
        if not pool:
            return "", Change()
        if pool in self.open_breakers:
            return f"the circuit breaker of pool {pool} is open", Change()
        window, trips = self._count(node)
        if not trips:
            return "", Change(decisions=(window,))
        reason = self._reason(pool)
        self.open_breakers[pool] = reason
        return reason, Change(
            remediation_switches=(
                RemediationSwitch(kind="breaker", pool=pool, reason=reason, since=now),
            ),
            events=(self._event("remediation.breaker_opened", pool, reason),),
            decisions=(window,),
        )

    def _count(self, node: Node) -> tuple[DecisionState, bool]:
        """The pool's window with `node` counted in, to store, and whether `node` crosses the
        pool's line."""
        settings = self._settings(node.pool)
        now = trio.current_time()
        window = settings.breaker_window.total_seconds()
        starts = [s for s in self._starts.get(node.pool, []) if now - s[0] < window]
        recent = {node_id for _, node_id in starts} | {node.node_id}
        size = len(
            {
                n.node_id
                for n in self._book.nodes()
                if n.pool == node.pool and n.status is not NodeStatus.TERMINATED
            }
            | recent
        )
        # One episode alone never opens the breaker, or a one-node pool could never heal.
        trips = len(recent) > 1 and len(recent) * 100 > settings.breaker_percent * size
        self._starts[node.pool] = starts if trips else [*starts, (now, node.node_id)]
        return memory.breaker_state(self._book.clock, node.pool, self._starts[node.pool]), trips

    def _reason(self, pool: str) -> str:
        settings = self._settings(pool)
        return (
            f"more than {settings.breaker_percent:g}% of pool {pool} entered remediation within "
            f"{format_duration(settings.breaker_window)}"
        )

    async def pause(self, pool: str, reason: str, actor: str) -> RemediationControls:
        if pool:
            self.paused_pools.add(pool)
        else:
            self.paused = True
        switch = RemediationSwitch(
            kind="pause", pool=pool, reason=reason, since=self._book.clock.now()
        )
        event = self._event("remediation.paused", pool, reason, actor)
        await self._book.commit(Change(remediation_switches=(switch,), events=(event,)))
        return self.controls()

    async def resume(self, pool: str, actor: str) -> RemediationControls:
        if pool:
            self.paused_pools.discard(pool)
        else:
            self.paused = False
        switch = RemediationSwitch(kind="pause", pool=pool, since=self._book.clock.now(), on=False)
        event = self._event("remediation.resumed", pool, "", actor)
        await self._book.commit(Change(remediation_switches=(switch,), events=(event,)))
        self._changed.set()
        self._changed = trio.Event()
        return self.controls()

    async def reset_breaker(self, pool: str, actor: str) -> RemediationControls:
        if pool not in self.open_breakers:
            raise Conflict(f"the circuit breaker of pool {pool} is not open")
        del self.open_breakers[pool]
        self._starts.pop(pool, None)
        switch = RemediationSwitch(
            kind="breaker", pool=pool, since=self._book.clock.now(), on=False
        )
        event = self._event("remediation.breaker_reset", pool, "", actor)
        window = memory.breaker_state(self._book.clock, pool, [])
        await self._book.commit(
            Change(remediation_switches=(switch,), events=(event,), decisions=(window,))
        )
        return self.controls()

    def _event(self, kind: str, pool: str, reason: str, actor: str = ACTOR) -> Event:
        return self._book.event(kind, "", actor, reason, details={"pool": pool})
