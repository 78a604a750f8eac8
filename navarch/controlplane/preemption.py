"""Machines the cloud takes back: a daemon's preemption notice, and an instance a provider lists
as preempted.

Either opens a remediation episode (see `navarch.controlplane.remediation`): a notice one that
asks the pool for the successor at once and drains the node while its machine still runs, or a
preempted one that skips the drain. A node of no pool that replaces nodes is cordoned and
drained on a notice, and left to the pool manager's reconcile once its machine is gone. Each
node's preemption is recorded once, however often the daemon repeats its notice or the provider
lists the machine.
"""

from __future__ import annotations

import enum
from datetime import datetime

from navarch.controlplane import lifecycle
from navarch.controlplane.book import NodeBook
from navarch.controlplane.commands import Commands
from navarch.controlplane.remediation import Remediator
from navarch.model import PREEMPTED_RULE, PREEMPTION_NOTICE_RULE
from navarch.store import Change

# What a notice may say the cloud will do.
NOTICE_KINDS = ("spot", "preempted", "maintenance")


class Taken(enum.Enum):
    """What `Preemptions.taken` did."""

    # A new episode was opened, or an open one learned that the machine is gone.
    RECORDED = "recorded"
    # The preemption was already known.
    KNOWN = "known"
    # Remediation cannot replace the node; the pool manager ends its instance itself.
    UNHANDLED = "unhandled"


class Preemptions:
    def __init__(self, book: NodeBook, commands: Commands, remediation: Remediator) -> None:
        self._book = book
        self._commands = commands
        self._remediation = remediation
        # Nodes whose notice was recorded, so a repeated notice records nothing.
        self._noticed: set[str] = set()

    async def notice(
        self, node_id: str, kind: str, at: datetime | None, detail: str, actor: str
    ) -> str:
        """The node's daemon heard that the cloud will take its machine back; returns the id of
        the node's episode ("" when remediation cannot replace the node)."""
        node = self._book.require(node_id)
        when = f" at {at.isoformat()}" if at is not None else ""
        reason = f"preemption notice ({kind}){when}" + (f": {detail}" if detail else "")
        episode = self._remediation.open_episode(node_id)
        if node_id in self._noticed or node.status is lifecycle.TERMINATED:
            return episode.episode_id if episode is not None else ""
        self._noticed.add(node_id)
        event = self._book.event(
            "node.preemption_notice", node_id, actor, reason, details={"kind": kind}
        )
        await self._book.commit(Change(events=(event,)))
        if episode is not None:
            return episode.episode_id
        if self._remediation.replaceable(node):
            started = await self._remediation.start(node, PREEMPTION_NOTICE_RULE, reason)
            return started.episode_id
        await self._commands.cordon(node_id, reason)
        await self._commands.drain(node_id, reason, actor)
        return ""

    async def taken(self, node_id: str, detail: str, actor: str) -> Taken:
        """The node's provider lists its machine as preempted."""
        node = self._book.get(node_id)
        if node is None or node.status is lifecycle.TERMINATED:
            return Taken.UNHANDLED
        reason = f"preempted: {detail}"
        if self._remediation.open_episode(node_id) is not None:
            if not self._remediation.machine_gone(node_id):
                return Taken.KNOWN
        elif self._remediation.replaceable(node):
            await self._remediation.start(node, PREEMPTED_RULE, reason)
        else:
            return Taken.UNHANDLED
        event = self._book.event("node.preempted", node_id, actor, reason)
        await self._book.commit(Change(events=(event,)))
        return Taken.RECORDED
