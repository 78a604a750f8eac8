"""What a change writes: each statement with its rows, in the order both backends write them.

The statements themselves are each backend's (`navarch.store.sqlite_sql`,
`navarch.store.postgres_sql`: the same statements in two parameter styles); the rows are
`navarch.store.rows`', the same for both.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from navarch.store import rows
from navarch.store.protocol import Change


class Statements(Protocol):
    """The statements a change needs: a backend's statement module."""

    UPSERT_NODE: str
    UPSERT_COMMAND: str
    INSERT_EVENT: str
    INSERT_HEALTH_EVENT: str
    UPSERT_INSTANCE: str
    UPSERT_REMEDIATION: str
    UPSERT_SWITCH: str
    DELETE_SWITCH: str
    UPSERT_DECISION: str
    DELETE_DECISION: str
    UPSERT_TOKEN: str


def writes(change: Change, sql: Statements) -> Iterator[tuple[str, Sequence[Sequence[object]]]]:
    """Each statement of `change` with its rows, for `executemany`; none for what it leaves
    alone."""
    if change.nodes:
        yield sql.UPSERT_NODE, [rows.node_row(n) for n in change.nodes]
    if change.commands:
        yield sql.UPSERT_COMMAND, [rows.command_row(c) for c in change.commands]
    if change.events:
        yield sql.INSERT_EVENT, [rows.event_row(e) for e in change.events]
    for report in change.health_reports:
        yield (
            sql.INSERT_HEALTH_EVENT,
            [
                (
                    report.report_id,
                    seq,
                    report.node_id,
                    rows.time(event.time),
                    event.type.value,
                    event.gpu_index,
                    event.xid,
                    rows.to_json(event),
                )
                for seq, event in enumerate(report.events)
            ],
        )
    if change.instances:
        yield sql.UPSERT_INSTANCE, [rows.instance_row(r) for r in change.instances]
    if change.remediations:
        yield sql.UPSERT_REMEDIATION, [rows.remediation_row(r) for r in change.remediations]
    for switch in change.remediation_switches:
        if switch.on:
            when = rows.time(switch.since)
            yield sql.UPSERT_SWITCH, [(switch.kind, switch.pool, switch.reason, when)]
        else:
            yield sql.DELETE_SWITCH, [(switch.kind, switch.pool)]
    for decision in change.decisions:
        if decision.value is None:
            yield sql.DELETE_DECISION, [(decision.scope, decision.key)]
        else:
            when = rows.time(decision.updated_at)
            yield sql.UPSERT_DECISION, [(decision.scope, decision.key, decision.value, when)]
    if change.node_tokens:
        yield (
            sql.UPSERT_TOKEN,
            [(t.node_id, t.token_hash, rows.time(t.issued_at)) for t in change.node_tokens],
        )
