"""What the control plane needs from a state store, whatever the database behind it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from attrs import field, frozen

from navarch.errors import NavarchError
from navarch.model import (
    Command,
    Event,
    HealthEvent,
    InstanceRecord,
    Node,
    NodeMetrics,
    Remediation,
)


class StoreError(NavarchError):
    """The store cannot be opened or used; the message names the database."""


class Deposed(StoreError):
    """A write refused because another control plane took the lease this one wrote under."""


@frozen(kw_only=True)
class HealthReport:
    """The events of one ReportHealth call, kept whole for the health policy."""

    report_id: str
    node_id: str
    events: tuple[HealthEvent, ...]


@frozen(kw_only=True)
class NodeToken:
    node_id: str
    # SHA-256 hex of the token; the token itself is never stored.
    token_hash: str
    issued_at: datetime


@frozen(kw_only=True)
class RemediationSwitch:
    """A pause (kind "pause"; pool empty for every pool) or an open circuit breaker ("breaker")."""

    kind: str
    pool: str
    reason: str = ""
    since: datetime
    # False removes the switch.
    on: bool = True


@frozen(kw_only=True)
class DecisionState:
    """What a decision depends on, kept so that a restarted control plane decides as the old one
    would have: a node's health-judge window, a pool's circuit-breaker window, a pool's floor and
    scaling windows, an episode a node's verdict asked for.

    `scope` names the owner and the kind of key: scopes that start with "node." are keyed by node
    id and go with the node when it is pruned; "pool." ones are keyed by pool name. `value` is the
    owner's value as JSON text in the store's format (`navarch.store.decisions.encode`); None
    deletes the entry. Times inside a value are wall-clock times, since trio's clock starts over
    with every process.
    """

    scope: str
    key: str
    value: str | None
    updated_at: datetime


@frozen(kw_only=True)
class Change:
    """One unit of work: everything in it becomes durable together or not at all."""

    nodes: tuple[Node, ...] = ()
    commands: tuple[Command, ...] = ()
    events: tuple[Event, ...] = ()
    health_reports: tuple[HealthReport, ...] = ()
    # A node's later token replaces its earlier one.
    node_tokens: tuple[NodeToken, ...] = ()
    # A later record of the same (provider, instance id) replaces the earlier one.
    instances: tuple[InstanceRecord, ...] = ()
    # A later record of the same episode replaces the earlier one.
    remediations: tuple[Remediation, ...] = ()
    remediation_switches: tuple[RemediationSwitch, ...] = ()
    # A later state of the same (scope, key) replaces the earlier one; value None deletes it.
    decisions: tuple[DecisionState, ...] = ()


@frozen(kw_only=True)
class StoredState:
    """What the control plane loads at start."""

    nodes: tuple[Node, ...] = ()
    # Commands not yet finished (pending or delivered), oldest first.
    open_commands: tuple[Command, ...] = ()
    node_tokens: dict[str, str] = field(factory=dict)
    # Instance records not yet terminated or failed.
    instances: tuple[InstanceRecord, ...] = ()
    # Remediation episodes that have not ended, oldest first.
    open_remediations: tuple[Remediation, ...] = ()
    remediation_switches: tuple[RemediationSwitch, ...] = ()
    # Every decision state, by scope and key.
    decisions: tuple[DecisionState, ...] = ()


class Store(Protocol):
    # The database, as shown to people ("/var/lib/navarch/navarch.db", or a PostgreSQL URL with
    # its credentials as "<redacted>").
    location: str
    # Changes that could not be written; their callers got a StoreError.
    failed_changes: int

    @property
    def unreadable_rows(self) -> int:
        """Rows that did not read back: set aside at load, or left out of an answer."""

    async def load(self, *, set_aside: bool = True) -> StoredState:
        """The stored state. Rows that do not read are left out and, with `set_aside`, moved to
        the quarantine and logged; without it the load writes nothing (a follower's snapshot,
        which must leave every write to the leader)."""
        ...

    async def commit(self, change: Change) -> None:
        """Writes `change`; returns once it is durable."""

    def commit_soon(self, change: Change) -> None:
        """Queues `change` for the next write without waiting: for state that may be lost."""

    def note_heartbeat(self, node_id: str, at: datetime, metrics: NodeMetrics | None) -> None:
        """Remembers a heartbeat and its metrics (None keeps the stored ones).

        Heartbeats reach the database in batches about once a second.
        """

    async def get_command(self, command_id: str) -> Command | None: ...

    async def list_commands(self, *, node_id: str, limit: int, before: str) -> list[Command]:
        """One node's commands of every status, newest first (by command id), older than the
        command id `before` when it is not empty."""

    async def remediation_switches(self) -> list[RemediationSwitch]:
        """The pauses and open circuit breakers as stored, with when each was set, by kind and
        pool."""

    async def list_remediations(self, *, pool: str, node_id: str, limit: int) -> list[Remediation]:
        """Remediation episodes newest first, optionally only one pool's or one node's."""

    async def list_events(
        self, *, node_id: str, kinds: Sequence[str], limit: int, before: str
    ) -> list[Event]:
        """Events newest first, optionally only one node's or some kinds, older than `before`."""

    async def prune_nodes(self, node_ids: Sequence[str], events_before: datetime) -> None:
        """Deletes the nodes (terminated ones, past their retention) with their tokens, commands,
        health reports and "node." decision states, and the events older than `events_before` of
        nodes the store no longer has."""
        ...

    async def ping(self) -> None:
        """Raises StoreError when the database cannot answer a query."""
