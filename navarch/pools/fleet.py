"""What the pool manager needs from the control plane it runs in.

`navarch.controlplane.ControlPlane` provides it; the pools never import the control plane, so the
dependency runs one way and a test can hand the manager something smaller.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from navarch.clock import Clock
from navarch.model import Command, Event, Node, NodeStatus, Remediation
from navarch.store import Change, Store


class FleetView(Protocol):
    store: Store
    clock: Clock

    def all_nodes(self) -> Iterable[Node]:
        """Every node, less its latest heartbeat."""
        ...

    def node(self, node_id: str) -> Node | None:
        """The node, less its latest heartbeat; None for one that never registered."""
        ...

    def node_status(self, node_id: str) -> NodeStatus | None: ...

    async def pool_nodes(self, pool: str) -> list[Node]:
        """The pool's nodes with their latest heartbeats (utilization comes from them)."""
        ...

    def event(
        self, kind: str, node_id: str, actor: str, reason: str = "", **details: str
    ) -> Event: ...

    async def record(self, change: Change) -> None:
        """Commits a change the manager made: its instances and events."""

    async def mark_terminated(self, node_id: str, reason: str, actor: str) -> None:
        """Records that a node's machine is gone."""

    async def drain(self, node_id: str, reason: str, actor: str) -> None:
        """Asks a node to drain; raises a DomainError when its status does not allow it."""

    async def run_diagnostic(self, node_id: str, level: int, reason: str, actor: str) -> str:
        """Asks the node to run its diagnostics at `level`; returns the command's id."""
        ...

    async def command_finished(self, command_id: str) -> Command:
        """Waits until the command ends and returns it as it ended."""
        ...

    async def uncordon(self, node_id: str, reason: str, actor: str) -> None:
        """Returns a cordoned node to service."""

    def judged_for_replacement(self) -> set[str]:
        """Nodes whose health verdict asks remediation to replace them."""
        ...

    def open_episodes(self) -> Iterable[Remediation]:
        """Remediation episodes that have not ended."""
        ...

    async def preempted(self, node_id: str, detail: str, actor: str) -> bool:
        """The node's provider lists its machine as preempted: remediation replaces the node
        (True), or cannot (False: no pool replaces it) and the caller ends its instance."""
        ...
