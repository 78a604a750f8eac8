"""Preflight: a pool's new node runs its diagnostics before it takes work.

In a pool with `[pools.NAME.preflight] enabled = true`, a node that registers for the first time
is CORDONED with the status reason "preflight" (`hold`). The pool's next round sees it and asks
its daemon to run the diagnostics (a run_diagnostic command at the pool's level), then waits for
the answer for at most the pool's preflight timeout:

- diagnostics that passed uncordon the node (`node.preflight_passed`);
- diagnostics that failed, or that did not answer in time, end the node: the pool terminates
  its instance and provisions a successor (`node.preflight_failed`, with the reason).

Until then the pool counts the node as in flight, as it counts an instance still registering:
it provisions nothing for it and never chooses it for scale-down. Each step is recorded on the
instance's record (`Preflight`) before it is carried out, so a restarted control plane waits for
the command it sent rather than sending another, with a full timeout from the restart. A node
that navarch did not make has no record, and runs its diagnostics again after a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

import attrs
import trio

from navarch.durations import format_duration
from navarch.model import (
    CommandStatus,
    Node,
    NodeStatus,
    Preflight,
    PreflightState,
)
from navarch.pools.fleet import FleetView
from navarch.pools.instances import ACTOR, Instances
from navarch.pools.pool import PoolState
from navarch.store import Change

log = logging.getLogger("navarch.pools")

# The status reason of a node held cordoned for its preflight.
PREFLIGHT_REASON = "preflight"


def in_preflight(node: Node) -> bool:
    """Whether the node is held cordoned until its preflight diagnostics pass."""
    return node.status is NodeStatus.CORDONED and node.status_reason == PREFLIGHT_REASON


class Preflights:
    """Runs the preflight of each new node of the pools that have one, and settles it."""

    def __init__(
        self, fleet: FleetView, instances: Instances, pools: Mapping[str, PoolState]
    ) -> None:
        self._fleet = fleet
        self._instances = instances
        self._pools = pools
        # Nodes whose preflight task runs now.
        self._running: set[str] = set()
        # Set by the pool manager: terminates the node's instance and provisions a successor.
        self.replace: Callable[[str, str], Awaitable[None]] | None = None
        self.nursery: trio.Nursery | None = None

    def hold(self, node_id: str, pool: str) -> str:
        """The status reason that holds a newly registered node cordoned; "" to let it in.
        Wakes the pool, so its next round starts the preflight at once."""
        state = self._pools.get(pool)
        if state is None or not state.config.preflight.enabled:
            return ""
        state.wake.set()
        return PREFLIGHT_REASON

    def start(self, pool: PoolState, members: Iterable[Node]) -> set[str]:
        """Starts the preflight of the pool's held nodes that have none under way; returns the
        ids of every node in preflight, which the round counts as in flight."""
        held = {n.node_id for n in members if n.pool == pool.name and in_preflight(n)}
        for node_id in sorted(held - self._running):
            if self.nursery is None:
                break
            self._running.add(node_id)
            self.nursery.start_soon(self._run, pool, node_id)
        return held

    async def _run(self, pool: PoolState, node_id: str) -> None:
        try:
            await self._preflight(pool, node_id)
        except Exception:
            # The node stays held; the pool's next round starts its preflight again.
            log.exception("node %s: preflight failed to run", node_id)
        finally:
            self._running.discard(node_id)

    async def _preflight(self, pool: PoolState, node_id: str) -> None:
        settings = pool.config.preflight
        record = self._instances.of_node(node_id)
        preflight = record.preflight if record is not None else None
        if preflight is not None and preflight.state is PreflightState.PASSED:
            await self._passed(node_id)
            return
        if preflight is not None and preflight.state is PreflightState.FAILED:
            await self._replace(node_id, preflight.detail)
            return
        if preflight is None or not preflight.command_id:
            level = settings.level
            command_id = await self._fleet.run_diagnostic(node_id, level, PREFLIGHT_REASON, ACTOR)
            now = self._fleet.clock.now()
            preflight = Preflight(
                state=PreflightState.RUNNING,
                level=level,
                command_id=command_id,
                detail=f"running diagnostics at level {level}",
                started_at=now,
                updated_at=now,
            )
            await self._save(node_id, preflight)
        timeout = settings.timeout
        ok, why = False, f"the diagnostics did not answer within {format_duration(timeout)}"
        with trio.move_on_after(timeout.total_seconds()):
            command = await self._fleet.command_finished(preflight.command_id)
            ok = command.status is CommandStatus.SUCCEEDED
            why = command.result_message or command.status.value
        if ok:
            preflight = self._settled(preflight, PreflightState.PASSED, why)
            await self._save(node_id, preflight, "node.preflight_passed", why)
            await self._passed(node_id)
            return
        preflight = self._settled(preflight, PreflightState.FAILED, why)
        await self._save(node_id, preflight, "node.preflight_failed", why)
        log.warning("node %s: preflight failed: %s", node_id, why)
        await self._replace(node_id, why)

    def _settled(self, preflight: Preflight, state: PreflightState, why: str) -> Preflight:
        return attrs.evolve(preflight, state=state, detail=why, updated_at=self._fleet.clock.now())

    async def _passed(self, node_id: str) -> None:
        node = self._fleet.node(node_id)
        # An operator or the health policy may have moved the node meanwhile; theirs stands.
        if node is not None and in_preflight(node):
            await self._fleet.uncordon(node_id, "preflight passed", ACTOR)

    async def _replace(self, node_id: str, why: str) -> None:
        if self.replace is not None:
            await self.replace(node_id, f"preflight failed: {why}")

    async def _save(
        self, node_id: str, preflight: Preflight, kind: str = "", why: str = ""
    ) -> None:
        """Records the preflight on the node's instance, with the event `kind` if given."""
        record = self._instances.of_node(node_id)
        event = None
        if kind:
            details = {"level": str(preflight.level), "commandId": preflight.command_id}
            if record is not None:
                details |= {"pool": record.pool, "instanceId": record.instance_id}
            event = self._fleet.event(kind, node_id, ACTOR, why, **details)
        if record is None:
            if event is not None:
                await self._fleet.record(Change(events=(event,)))
            return
        after = attrs.evolve(record, preflight=preflight, updated_at=self._fleet.clock.now())
        await self._instances.save(after, event)
