"""Nodes joining, staying in touch and leaving: registration, heartbeats, silence, termination.

A node registers with its inventory and is ACTIVE, or CORDONED with the reason "preflight" in a
pool whose new nodes run diagnostics first (`hold`); registering again (a restarted daemon) keeps
its status, so a restart cannot revive a cordoned or unhealthy node. Each heartbeat marks the node
as seen and hands it the commands that are due. A node silent past the heartbeat timeout becomes
UNHEALTHY with health UNKNOWN (`heartbeats_lost`); when it speaks again it stays unhealthy, and
only the reason says that it is back.

A node id is held by the daemon that keeps in touch with it. While the node has been heard from
within the heartbeat timeout, registering it with the join or admin token (which would issue a
new node token and revoke the holder's) is refused: two daemons with one node id would otherwise
take the token from each other for ever. The holder itself registers again with its node token.
A registration that asks to take the node over is let through, revokes the holder's token and
records `node.taken_over`; a refusal is logged and handed to the notifiers as the event
`node.registration_refused`, and changes nothing in the store. Without tokens, nothing tells two
daemons apart, and none is refused.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import timedelta

import attrs
import trio
from attrs import frozen

from navarch.controlplane import lifecycle
from navarch.controlplane.auth import Authenticator, new_node_token, token_hash
from navarch.controlplane.book import NodeBook, log
from navarch.controlplane.commands import Commands
from navarch.durations import format_duration
from navarch.errors import Conflict
from navarch.model import (
    HEARTBEAT_LOST,
    Command,
    HealthStatus,
    Inventory,
    Node,
    NodeMetrics,
    NodeStatus,
)
from navarch.store import Change, DecisionState, NodeToken


@frozen(kw_only=True)
class NodeFilter:
    """Which nodes a listing shows; an empty field matches every node."""

    statuses: frozenset[NodeStatus] = frozenset()
    healths: frozenset[HealthStatus] = frozenset()
    pool: str = ""
    provider: str = ""
    region: str = ""
    # Every label must match exactly.
    labels: Mapping[str, str] = attrs.field(factory=dict)

    def matches(self, node: Node) -> bool:
        return (
            (not self.statuses or node.status in self.statuses)
            and (not self.healths or node.health in self.healths)
            and (not self.pool or node.pool == self.pool)
            and (not self.provider or node.provider == self.provider)
            and (not self.region or node.region == self.region)
            and self.labels.items() <= node.labels.items()
        )


class Nodes:
    def __init__(self, book: NodeBook, commands: Commands, auth: Authenticator) -> None:
        self._book = book
        self._commands = commands
        self._auth = auth
        # Called with the nodes that just went silent, once their status is committed
        # (remediation replaces them).
        self.on_silent: Callable[[Sequence[Node]], Awaitable[None]] = _nothing
        # What `on_silent` will do, stored with the silent nodes' commit so a restart in between
        # still does it (remediation's episode intents).
        self.silent_intents: Callable[[Sequence[Node]], tuple[DecisionState, ...]] = _no_intents
        # Given a new node's id and pool, the status reason that holds it cordoned until its
        # pool lets it in ("" to let it in at once): the pool's preflight diagnostics.
        self.hold: Callable[[str, str], str] = _let_in
        # node id -> trio time it last registered or sent a heartbeat, to tell whether a daemon
        # holds it; a restarted control plane has heard from none yet.
        self._heard_at: dict[str, float] = {}

    async def register(
        self,
        node_id: str,
        inventory: Inventory,
        *,
        actor: str,
        agent_version: str,
        token: bool,
        take_over: bool = False,
    ) -> tuple[Node, str]:
        """Registers the node, or registers it again; with `token`, issues it a node token.

        A new token for a node that a daemon holds is refused, unless `take_over`. Returns the
        node and its new token ("" when none was issued).
        """
        book = self._book
        existing = book.get(node_id)
        if existing is not None and existing.status is lifecycle.TERMINATED:
            raise Conflict(
                f"node {node_id} is terminated; a terminated node id cannot register again"
            )
        fields = attrs.asdict(inventory, recurse=False)
        details = {"agentVersion": agent_version} if agent_version else {}
        held_for = self._held_for(node_id) if existing is not None and token else None
        if held_for is not None and not take_over:
            await self._refuse(node_id, held_for, actor, details)
        if existing is None:
            held = self.hold(node_id, inventory.pool)
            node = Node(
                node_id=node_id,
                status=lifecycle.CORDONED if held else lifecycle.ACTIVE,
                status_reason=held,
                health=HealthStatus.UNKNOWN,
                registered_at=book.clock.now(),
                **fields,
            )
            event = book.event(
                "node.registered", node_id, actor, to_status=node.status, details=details
            )
        else:
            # A restarted daemon keeps the status its node had: a restart must not revive a
            # cordoned or unhealthy node.
            node = attrs.evolve(existing, **fields)
            if held_for is not None:
                event = book.event(
                    "node.taken_over",
                    node_id,
                    actor,
                    "taken over by a new daemon; the previous daemon's token is revoked",
                    details={**details, "heardAgo": held_for},
                )
            else:
                event = book.event("node.reregistered", node_id, actor, details=details)
        change = Change(nodes=(node,), events=(event,))
        issued = ""
        if token:
            issued = new_node_token()
            hashed = token_hash(issued)
            change = attrs.evolve(
                change,
                node_tokens=(
                    NodeToken(node_id=node_id, token_hash=hashed, issued_at=book.clock.now()),
                ),
            )
        book.put(node)
        await book.commit(change)
        # Only once the store has them: a failed call changes nothing.
        if issued:
            self._auth.set_node_token(node_id, token_hash(issued))
        book.monitor.seen(node_id)
        self._heard_at[node_id] = trio.current_time()
        return book.full(node), issued

    def _held_for(self, node_id: str) -> str | None:
        """How long ago the node was heard from, when that is within the heartbeat timeout."""
        heard_at = self._heard_at.get(node_id)
        if heard_at is None:
            return None
        ago = trio.current_time() - heard_at
        if ago > self._book.monitor.timeout:
            return None
        return format_duration(timedelta(seconds=max(1, round(ago))))

    async def _refuse(
        self, node_id: str, held_for: str, actor: str, details: Mapping[str, str]
    ) -> None:
        book = self._book
        timeout = format_duration(timedelta(seconds=book.monitor.timeout))
        why = (
            f"node {node_id} is held by a daemon that was heard from {held_for} ago; stop that "
            f"daemon and wait {timeout}, give this one another node id, or take the id over "
            "with takeOver (navarch daemon --take-over)"
        )
        event = book.event(
            "node.registration_refused",
            node_id,
            actor,
            why,
            details={**details, "heardAgo": held_for},
        )
        # A refused call changes nothing in the store; the refusal is logged, counted and handed
        # to the notifiers as `commit` does with the events it writes.
        book.event_counts[event.kind] += 1
        log.warning("event=%s node=%s actor=%s reason=%r", event.kind, node_id, actor, why)
        for notifier in book.notifiers:
            notifier.notify(event)
        await trio.lowlevel.checkpoint()
        raise Conflict(why)

    async def heartbeat(
        self, node_id: str, metrics: NodeMetrics | None
    ) -> tuple[NodeStatus, list[Command]]:
        """Records a heartbeat; returns the node's status and the commands due for it."""
        book = self._book
        node = book.require(node_id)
        if node.status is lifecycle.TERMINATED:
            return node.status, []
        book.beat(node_id, book.clock.now(), metrics)
        self._heard_at[node_id] = trio.current_time()
        if node_id in book.silent:
            await self._resumed(node)
        queue = self._commands.queue
        commands, delivered = queue.take_due(node_id)
        if delivered:
            book.store.commit_soon(Change(commands=tuple(delivered)))
        return node.status, commands

    async def _resumed(self, node: Node) -> None:
        book = self._book
        book.silent.discard(node.node_id)
        # The node stays unhealthy; only the reason says that it is back.
        resumed = attrs.evolve(node, status_reason=f"{HEARTBEAT_LOST}; heartbeats resumed")
        book.put(resumed)
        event = book.event("node.heartbeat_resumed", node.node_id, f"node:{node.node_id}")
        await book.commit(Change(nodes=(resumed,), events=(event,)))

    async def heartbeats_lost(self, node_ids: Iterable[str]) -> None:
        """Marks nodes silent past the heartbeat timeout as unhealthy, health unknown."""
        book = self._book
        nodes, events = [], []
        for node_id in node_ids:
            node = book.get(node_id)
            if node is None or node.status not in lifecycle.TRANSITIONS["heartbeat_lost"]:
                continue
            status = lifecycle.next_status("heartbeat_lost", node_id, node.status)
            # Nobody knows what the hardware says while the node is silent.
            after = attrs.evolve(
                node, status=status, status_reason=HEARTBEAT_LOST, health=HealthStatus.UNKNOWN
            )
            book.put(after)
            book.silent.add(node_id)
            nodes.append(after)
            events.append(book.status_event(node, after, "heartbeat-monitor"))
            if node.health is not after.health:
                events.append(
                    book.event(
                        "node.health_changed",
                        node_id,
                        "heartbeat-monitor",
                        HEARTBEAT_LOST,
                        details={"from": node.health.value, "to": after.health.value},
                    )
                )
        if nodes:
            intents = self.silent_intents(nodes)
            await book.commit(Change(nodes=tuple(nodes), events=tuple(events), decisions=intents))
        await self.on_silent(nodes)

    async def mark_terminated(self, node_id: str, reason: str, actor: str) -> None:
        """Records that a node's machine is gone: its instance was terminated or lost."""
        book = self._book
        node = book.get(node_id)
        if node is None or node.status is lifecycle.TERMINATED:
            return
        after = attrs.evolve(node, status=lifecycle.TERMINATED, status_reason=reason)
        cancelled = self._commands.cancel_open(node_id, "node terminated")
        book.forget(node_id)
        self._heard_at.pop(node_id, None)
        book.put(after)
        await book.commit(
            Change(
                nodes=(after,),
                commands=tuple(cancelled),
                events=(book.status_event(node, after, actor),),
            )
        )

    async def list(self, which: NodeFilter) -> list[Node]:
        """The nodes `which` matches, by node id, with their latest heartbeats."""
        book = self._book
        nodes = [
            book.full(node) for node in sorted(book.nodes(), key=_by_id) if which.matches(node)
        ]
        await trio.lowlevel.checkpoint()
        return nodes

    # `list` in this class body is the method above, hence builtins.list.
    async def get(self, node_id: str) -> tuple[Node, builtins.list[Command]]:
        """The node with its latest heartbeat, and its open commands, oldest first."""
        node = self._book.require(node_id)
        await trio.lowlevel.checkpoint()
        return self._book.full(node), self._commands.queue.open_commands(node_id)


def _let_in(_node_id: str, _pool: str) -> str:
    return ""


async def _nothing(_nodes: Sequence[Node]) -> None:
    await trio.lowlevel.checkpoint()


def _no_intents(_nodes: Sequence[Node]) -> tuple[DecisionState, ...]:
    return ()


def _by_id(node: Node) -> str:
    return node.node_id
