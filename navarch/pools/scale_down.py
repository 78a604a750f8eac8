"""Scale-down: the victims a pool chose leave, drained first unless the pool says otherwise.

Each drained victim is watched by a task of its own, which terminates the node's instance once it
is DRAINED or the pool's drain timeout ends. A victim that an operator uncordons during its drain
stays, and the pool's next round counts it again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import trio

from navarch.errors import DomainError
from navarch.model import Node, NodeStatus
from navarch.pools.fleet import FleetView
from navarch.pools.instances import Instances
from navarch.pools.pool import PoolState
from navarch.pools.victims import choose_victims
from navarch.pools.zone_balance import places

log = logging.getLogger("navarch.pools")

# How often a draining victim is checked for DRAINED.
DRAIN_POLL = 1.0


class ScaleDown:
    def __init__(self, fleet: FleetView, instances: Instances) -> None:
        self._fleet = fleet
        self._instances = instances
        self.nursery: trio.Nursery | None = None
        # Scale-down victims whose drain a task is watching.
        self.draining: set[str] = set()

    async def remove(self, pool: PoolState, nodes: Sequence[Node], count: int) -> None:
        """Chooses up to `count` victims among `nodes` and starts them leaving."""
        drain = pool.config.scaling.scale_down.drain
        plan = choose_victims(
            nodes,
            count,
            min_nodes=pool.config.min_nodes,
            drain=drain,
            places=places(nodes, self._instances.records.values()),
        )
        if plan.shortfall:
            log.info("pool %s: %s", pool.name, plan.shortfall)
        reason = pool.scale_down_reason
        for node in plan.victims:
            # A silent node cannot drain; waiting for it only delays its end.
            if plan.drain and node.status is not NodeStatus.UNHEALTHY:
                try:
                    await self._fleet.drain(node.node_id, reason, "admin")
                except DomainError as exc:
                    log.warning("pool %s: cannot drain %s: %s", pool.name, node.node_id, exc)
                    continue
                self.watch(pool, node.node_id, reason)
            else:
                await self._instances.terminate_node(node.node_id, reason)

    def watch(self, pool: PoolState, node_id: str, reason: str) -> None:
        assert self.nursery is not None, "the pool manager is not running"
        self.draining.add(node_id)
        self.nursery.start_soon(self._drain_then_terminate, pool, node_id, reason)

    async def _drain_then_terminate(self, pool: PoolState, node_id: str, reason: str) -> None:
        """Terminates the node once it is drained, or when the pool's drain timeout ends."""
        try:
            with trio.move_on_after(pool.config.health.drain_timeout.total_seconds()):
                while self._fleet.node_status(node_id) is NodeStatus.DRAINING:
                    await trio.sleep(DRAIN_POLL)
            if self._fleet.node_status(node_id) in (NodeStatus.ACTIVE, NodeStatus.CORDONED):
                # An operator uncordoned it during the drain: it stays, and the pool's next
                # round counts it again.
                log.info("pool %s: %s returned to service during its drain", pool.name, node_id)
                return
            await self._instances.terminate_node(node_id, reason)
        finally:
            self.draining.discard(node_id)
