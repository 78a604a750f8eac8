"""What a load reads: every table of the stored state, in the order both backends read them.

The statements that differ by parameter style are each backend's (`navarch.store.sqlite_sql`,
`navarch.store.postgres_sql`); the reading of rows into domain objects is `navarch.store.rows`',
and the setting aside of rows that do not read is the backend's quarantine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from navarch.store import rows
from navarch.store.protocol import StoredState
from navarch.store.quarantine import Salvage

T = TypeVar("T")


class LoadStatements(Protocol):
    """The statements a load needs that differ by parameter style: a backend's statement module."""

    NODE_COLUMNS: str
    COMMAND_COLUMNS: str
    INSTANCE_COLUMNS: str
    REMEDIATION_COLUMNS: str
    # Open commands and live instances, with their parameters.
    LOAD_COMMANDS: str
    LOAD_INSTANCES: str

    @property
    def LOAD_COMMANDS_PARAMS(self) -> Sequence[object]: ...

    @property
    def LOAD_INSTANCES_PARAMS(self) -> Sequence[object]: ...

    # Resets a node's metrics and last health events, by rowid.
    SALVAGE_NODE: str


class Read(Protocol):
    """A quarantine's `read`: the rows of a query, those that do not read set aside."""

    def __call__(
        self,
        conn: Any,
        table: str,
        sql: str,
        params: Sequence[object],
        read: Callable[[rows.Row], T],
        salvage: Salvage | None = None,
    ) -> list[T]: ...


def load_state(conn: Any, read: Read, sql: LoadStatements, reader: rows.RowReader) -> StoredState:
    """The stored state, read over `conn` (in the caller's transaction, if any)."""
    salvage = Salvage(row=lambda row: (*row[:14], None, "[]"), sql=sql.SALVAGE_NODE)
    nodes = read(
        conn,
        "nodes",
        f"SELECT rowid, {sql.NODE_COLUMNS} FROM nodes ORDER BY node_id",
        (),
        reader.node,
        salvage,
    )
    commands = read(conn, "commands", sql.LOAD_COMMANDS, sql.LOAD_COMMANDS_PARAMS, reader.command)
    tokens: dict[str, str] = dict(
        conn.execute("SELECT node_id, token_hash FROM node_tokens").fetchall()
    )
    instances = read(
        conn, "instances", sql.LOAD_INSTANCES, sql.LOAD_INSTANCES_PARAMS, reader.instance
    )
    remediations = read(
        conn,
        "remediations",
        f"SELECT rowid, {sql.REMEDIATION_COLUMNS} FROM remediations WHERE open = 1 "
        "ORDER BY episode_id",
        (),
        reader.remediation,
    )
    switches = read(
        conn,
        "remediation_switches",
        "SELECT rowid, kind, pool, reason, since FROM remediation_switches ORDER BY kind, pool",
        (),
        reader.switch,
    )
    decisions = read(
        conn,
        "decision_state",
        "SELECT rowid, scope, key, value, updated_at FROM decision_state ORDER BY scope, key",
        (),
        reader.decision,
    )
    return StoredState(
        nodes=tuple(nodes),
        open_commands=tuple(commands),
        node_tokens=tokens,
        instances=tuple(instances),
        open_remediations=tuple(remediations),
        remediation_switches=tuple(switches),
        decisions=tuple(decisions),
    )
