"""Instance tracking: every instance a pool asked a provider for, from the request to its end.

Each record moves through the statuses of `navarch.model.InstanceStatus`, and every move is
committed with an `instance.<status>` event. The records live in the store, so a restarted
control plane still knows every instance it made and reconciles them against what the providers
list (`navarch.pools.reconcile`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import attrs
import trio

from navarch.model import (
    IN_FLIGHT,
    LIVE,
    BootstrapState,
    Event,
    InstanceRecord,
    InstanceStatus,
    Node,
)
from navarch.plugins import InstanceNotFound, Provider
from navarch.pools.fleet import FleetView
from navarch.pools.pool import PoolState
from navarch.store import Change

log = logging.getLogger("navarch.pools")

ACTOR = "pool-manager"


class Instances:
    def __init__(self, fleet: FleetView, providers: Mapping[str, Provider]) -> None:
        self._fleet = fleet
        self._providers = providers
        self.records: dict[tuple[str, str], InstanceRecord] = {}
        # trio time each record entered its status, for the registration timeout.
        self.since: dict[tuple[str, str], float] = {}

    def load(self, records: Iterable[InstanceRecord]) -> None:
        now = trio.current_time()
        for record in records:
            self.records[record.key] = record
            # A restart gives instances still registering a full timeout from now.
            self.since[record.key] = now

    def of_pool(self, pool: str) -> list[InstanceRecord]:
        """The pool's instances that exist or may exist, oldest first."""
        found = [r for r in self.records.values() if r.pool == pool and r.status in LIVE]
        return sorted(
            found, key=lambda r: (r.created_at.timestamp() if r.created_at else 0.0, r.instance_id)
        )

    def failed_bootstraps(self, pool: str, count: int = 5) -> list[InstanceRecord]:
        """The pool's latest instances whose bootstrap failed, oldest first: gone, but what
        their machines said is what an operator needs to fix the next ones."""
        failed = [
            r
            for r in self.records.values()
            if r.pool == pool
            and r.status not in LIVE
            and r.bootstrap is not None
            and r.bootstrap.state is BootstrapState.FAILED
        ]
        failed.sort(key=lambda r: r.updated_at.timestamp() if r.updated_at else 0.0)
        return failed[-count:]

    def of_node(self, node_id: str) -> InstanceRecord | None:
        """The live instance a node runs on; None for a node navarch did not make."""
        for record in self.records.values():
            if record.node_id == node_id and record.status in LIVE:
                return record
        return None

    def in_flight(self, pool: PoolState, nodes: Iterable[Node]) -> int:
        """Instances asked for, not yet registered as nodes, with the provision calls under way."""
        # A record still registering whose node is among `nodes` has registered since the last
        # reconcile and is counted as a node already.
        registered = {n.node_id for n in nodes if n.pool == pool.name}
        return pool.pending + sum(
            1
            for r in self.records.values()
            if r.pool == pool.name and r.status in IN_FLIGHT and r.node_id not in registered
        )

    async def save(self, record: InstanceRecord, event: Event | None = None) -> None:
        earlier = self.records.get(record.key)
        self.records[record.key] = record
        if earlier is None or earlier.status is not record.status:
            self.since[record.key] = trio.current_time()
        await self._fleet.record(
            Change(instances=(record,), events=(event,) if event is not None else ())
        )

    async def move(self, record: InstanceRecord, status: InstanceStatus, reason: str) -> None:
        after = attrs.evolve(
            record, status=status, reason=reason, updated_at=self._fleet.clock.now()
        )
        event = self._fleet.event(
            f"instance.{status.value}",
            record.node_id,
            ACTOR,
            reason,
            pool=record.pool,
            provider=record.provider,
            instanceId=record.instance_id,
        )
        await self.save(after, event)

    async def lost(self, record: InstanceRecord) -> None:
        why = "lost: the provider no longer lists it"
        await self.move(record, InstanceStatus.FAILED, why)
        await self._fleet.mark_terminated(record.node_id, f"instance {why}", ACTOR)

    async def terminate(
        self,
        record: InstanceRecord,
        reason: str,
        final: InstanceStatus = InstanceStatus.TERMINATED,
    ) -> None:
        """Ends the instance at its provider, then its record and its node."""
        if record.status is not InstanceStatus.TERMINATING:
            await self.move(record, InstanceStatus.TERMINATING, reason)
            record = self.records[record.key]
        provider = self._providers.get(record.provider)
        if provider is None:
            log.warning(
                "instance %s: provider %s is not loaded", record.instance_id, record.provider
            )
            return
        try:
            await provider.terminate(record.instance_id)
        except InstanceNotFound:
            pass
        except Exception as exc:
            # The record stays TERMINATING; the next round tries again.
            log.warning("instance %s: terminate failed: %s", record.instance_id, exc)
            return
        await self.move(record, final, reason)
        await self._fleet.mark_terminated(record.node_id, reason, ACTOR)

    async def terminate_node(self, node_id: str, reason: str) -> None:
        """Ends the node's instance; a node navarch did not make only has its record ended."""
        record = self.of_node(node_id)
        if record is None:
            await self._fleet.mark_terminated(node_id, reason, ACTOR)
            return
        await self.terminate(record, reason)
