"""The node book: every node as the control plane knows it, and the one way to change that.

The book keeps every node in memory, loaded from the store at start, so a heartbeat touches no
database. Whoever changes durable state builds the new objects, puts them in the book (trio runs
one task at a time, so no other task sees a half-made change) and then awaits `commit`, which
returns once the store has the change: an answer never reports a change that a crash could undo.
`commit` also counts each event, logs it and hands it to the notifiers and the listeners (the
dashboard's live streams), none of which may block.

Heartbeat times and metrics are soft state, kept apart from the node records: they reach the store
in batches about once a second, and `full` puts them back on a node for whoever reads it. The book
keeps each node's latest metrics as nested tuples of numbers, which the garbage collector stops
tracking, rather than as objects it would track: 10,000 nodes' metrics would otherwise be 120,000
long-lived objects, renewed every heartbeat, that each full collection walks while every request
waits (see "Garbage collection pauses" in docs/performance.md).
"""

from __future__ import annotations

import collections
import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

import attrs

from navarch.clock import Clock
from navarch.controlplane.heartbeat import HeartbeatMonitor
from navarch.errors import NotFound
from navarch.ids import IdFactory
from navarch.model import Event, GpuMetrics, Node, NodeMetrics, NodeStatus
from navarch.plugins import Notifier
from navarch.store import Change, Store

log = logging.getLogger("navarch.controlplane")


class NodeBook:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        ids: IdFactory,
        heartbeat_timeout: float,
        notifiers: Sequence[Notifier] = (),
    ) -> None:
        self.store = store
        self.clock = clock
        self.ids = ids
        self.notifiers = list(notifiers)
        # Called with each committed event; each returns at once and never raises.
        self.listeners: list[Callable[[Event], None]] = []
        self.monitor = HeartbeatMonitor(heartbeat_timeout)
        self.event_counts: collections.Counter[str] = collections.Counter()
        self._nodes: dict[str, Node] = {}
        # Each node as the store has it: a commit that fails puts its nodes back to these, so a
        # failed call changes nothing here either.
        self._committed: dict[str, Node] = {}
        # node id -> the time of its last heartbeat, and its latest metrics.
        self._beat_at: dict[str, datetime] = {}
        self._metrics: dict[str, _Packed] = {}
        # Nodes marked unhealthy for silence that have not been heard from since.
        self.silent: set[str] = set()

    def nodes(self) -> Iterable[Node]:
        """Every node, less its latest heartbeat time and metrics."""
        return self._nodes.values()

    def get(self, node_id: str) -> Node | None:
        return self._nodes.get(node_id)

    def require(self, node_id: str) -> Node:
        node = self._nodes.get(node_id)
        if node is None:
            raise NotFound(f"node {node_id} is not registered")
        return node

    def status(self, node_id: str) -> NodeStatus | None:
        node = self._nodes.get(node_id)
        return None if node is None else node.status

    def put(self, node: Node, *, stored: bool = False) -> None:
        """Keeps the node as it is now; `stored` says the store has it so (a loaded node)."""
        self._nodes[node.node_id] = node
        if stored:
            self._committed[node.node_id] = node

    def drop(self, node_id: str) -> None:
        """Drops a node the store no longer has (a terminated node past its retention)."""
        for kept in (self._nodes, self._committed, self._beat_at, self._metrics):
            kept.pop(node_id, None)
        self.silent.discard(node_id)
        self.monitor.forget(node_id)

    def beat(self, node_id: str, at: datetime, metrics: NodeMetrics | None) -> None:
        """Records a heartbeat; metrics None keeps the last ones the node sent."""
        self._beat_at[node_id] = at
        if metrics is not None:
            self._metrics[node_id] = _pack(metrics)
        self.monitor.seen(node_id)
        self.store.note_heartbeat(node_id, at, metrics)

    def full(self, node: Node) -> Node:
        """The node with its latest heartbeat time and metrics."""
        at = self._beat_at.get(node.node_id)
        if at is None:
            return node
        packed = self._metrics.get(node.node_id)
        return attrs.evolve(
            node, last_heartbeat_at=at, metrics=node.metrics if packed is None else _unpack(packed)
        )

    def readings(self) -> tuple[Mapping[str, datetime], Mapping[str, _Packed]]:
        """Each node's last heartbeat time, and its latest metrics packed as `_pack` lays them out
        (the live mappings, not copies: a reader must not keep them across an await)."""
        return self._beat_at, self._metrics

    def forget(self, node_id: str) -> None:
        """Stops watching a node that is gone: it will never send a heartbeat again."""
        self.monitor.forget(node_id)
        self.silent.discard(node_id)

    def event(
        self,
        kind: str,
        node_id: str,
        actor: str,
        reason: str = "",
        *,
        from_status: NodeStatus | None = None,
        to_status: NodeStatus | None = None,
        details: Mapping[str, str] | None = None,
    ) -> Event:
        """An event stamped with the service's id and wall clock, to put in a `Change`."""
        return Event(
            event_id=self.ids.new(),
            time=self.clock.now(),
            kind=kind,
            node_id=node_id,
            actor=actor,
            reason=reason,
            from_status=from_status,
            to_status=to_status,
            details=dict(details or {}),
        )

    def status_event(self, before: Node, after: Node, actor: str, **details: str) -> Event:
        return self.event(
            "node.status_changed",
            after.node_id,
            actor,
            after.status_reason,
            from_status=before.status,
            to_status=after.status,
            details=details,
        )

    async def commit(self, change: Change) -> None:
        """Writes `change`; returns once it is durable, then tells the notifiers its events."""
        nodes = change.nodes
        if nodes:
            change = attrs.evolve(change, nodes=tuple(self.full(n) for n in nodes))
        try:
            await self.store.commit(change)
        except BaseException:
            self._put_back(nodes)
            raise
        for node in nodes:
            self._committed[node.node_id] = node
        for event in change.events:
            self.event_counts[event.kind] += 1
            log.info(
                "event=%s node=%s actor=%s reason=%r%s",
                event.kind,
                event.node_id,
                event.actor,
                event.reason,
                f" status={event.to_status.value}" if event.to_status else "",
            )
            for notifier in self.notifiers:
                notifier.notify(event)
            for listener in self.listeners:
                listener(event)

    def _put_back(self, nodes: Sequence[Node]) -> None:
        """Returns nodes whose commit failed to what the store has of them."""
        for node in nodes:
            committed = self._committed.get(node.node_id)
            if committed is None:
                self._nodes.pop(node.node_id, None)
            else:
                self._nodes[node.node_id] = committed


# Metrics as the book keeps them: one flat tuple of numbers, the collector's to untrack at its
# next pass: cpu, memory, then index, utilization, memory used, temperature, power, corrected and
# uncorrected ECC errors of each GPU. `/metrics` reads it by these positions
# (`ControlPlane.readings`); a new GPU field goes last.
_Packed = tuple[float, ...]
FIRST_GPU = 2
GPU_FIELDS = 7


def _pack(metrics: NodeMetrics) -> _Packed:
    # Adding 0.0 turns -0.0 into 0.0, so that equal keys of `_unpack`'s cache give equal objects.
    packed = [metrics.cpu_percent + 0.0, metrics.memory_percent + 0.0]
    for g in metrics.gpus:
        packed += (
            g.index,
            g.utilization_percent + 0.0,
            g.memory_used_bytes,
            g.temperature_c + 0.0,
            g.power_watts + 0.0,
            g.ecc_corrected,
            g.ecc_uncorrected,
        )
    return tuple(packed)


@functools.lru_cache(maxsize=1024)
def _unpack(packed: _Packed) -> NodeMetrics:
    """Packed metrics as the domain's object; nodes under the same load send the same readings."""
    return NodeMetrics(
        cpu_percent=packed[0],
        memory_percent=packed[1],
        gpus=tuple(
            GpuMetrics(
                index=int(packed[i]),
                utilization_percent=packed[i + 1],
                memory_used_bytes=int(packed[i + 2]),
                temperature_c=packed[i + 3],
                power_watts=packed[i + 4],
                ecc_corrected=int(packed[i + 5]),
                ecc_uncorrected=int(packed[i + 6]),
            )
            for i in range(FIRST_GPU, len(packed), GPU_FIELDS)
        ),
    )
