"""Spot machines and the fall back to on-demand ones when the spot market has none.

A pool's provider entry with `spot = true` asks for spot machines. Each provisioning attempt that
finds no spot capacity for the entry counts once: a spot capacity error, or every spot place of
the entry still blocked by an earlier one. At the entry's `spot_fallback_after` such attempts in
a row, the entry asks for on-demand machines for as long as a capacity block lasts, then tries
spot again; a spot machine had ends the run of refusals.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta

import trio

from navarch.durations import format_duration
from navarch.plugins import Candidate
from navarch.pools.failover import Attempt, BlockKind, BlockList
from navarch.pools.fleet import FleetView
from navarch.pools.instances import ACTOR
from navarch.pools.pool import PoolState
from navarch.store import Change

log = logging.getLogger("navarch.pools")


class SpotMarket:
    def __init__(self, fleet: FleetView, blocks: BlockList) -> None:
        self._fleet = fleet
        self._blocks = blocks

    def on_demand(self, pool: PoolState) -> list[int]:
        """The pool's spot entries (by index) that ask for on-demand machines now."""
        now = trio.current_time()
        return [index for index, until in pool.on_demand_until.items() if until > now]

    async def before(
        self, pool: PoolState, candidates: Callable[[], list[Candidate]]
    ) -> list[Candidate]:
        """The candidates of an attempt, once each spot entry with every spot place blocked for
        capacity has counted the attempt as refused (which may make it fall back)."""
        offered = candidates()
        now = trio.current_time()
        by_entry: dict[int, list[Candidate]] = {}
        for candidate in offered:
            if candidate.spot:
                by_entry.setdefault(candidate.entry, []).append(candidate)
        fell_back = False
        for spot in by_entry.values():
            blocks = [self._blocks.blocking(c, now) for c in spot]
            if all(b is not None and b.kind is BlockKind.CAPACITY for b in blocks):
                fell_back |= await self._refused(pool, spot[0])
        return candidates() if fell_back else offered

    async def after(self, pool: PoolState, attempts: Sequence[Attempt]) -> None:
        """Counts the spot capacity errors of an attempt; a spot machine had resets the count."""
        for attempt in attempts:
            candidate = attempt.candidate
            if not candidate.spot:
                continue
            if attempt.block is not None and attempt.block.kind is BlockKind.CAPACITY:
                await self._refused(pool, candidate)
            elif not attempt.error:
                pool.spot_failures.pop(candidate.entry, None)

    async def _refused(self, pool: PoolState, candidate: Candidate) -> bool:
        """Counts one refusal of the candidate's entry; True when the entry falls back now."""
        index = candidate.entry
        failures = pool.spot_failures.get(index, 0) + 1
        pool.spot_failures[index] = failures
        limit = pool.config.providers[index].spot_fallback_after
        if not limit or failures < limit:
            return False
        pool.spot_failures.pop(index, None)
        seconds = self._blocks.policy.capacity_block
        pool.on_demand_until[index] = trio.current_time() + seconds
        why = (
            f"no spot capacity on {candidate.provider} in {failures} attempts in a row; asking "
            f"for on-demand machines for {format_duration(timedelta(seconds=seconds))}"
        )
        log.warning("pool %s: %s", pool.name, why)
        event = self._fleet.event(
            "pool.spot_fallback", "", ACTOR, why, pool=pool.name, provider=candidate.provider
        )
        await self._fleet.record(Change(events=(event,)))
        return True
