"""Rows from the wire format to the store's own: enum values and JSON field names.

Until now the store kept what the API sends: `NODE_STATUS_ACTIVE`, and JSON in lowerCamelCase
(`pciBusId`). From this version it keeps the domain's values (`active`) and field names
(`pci_bus_id`), so the wire can change without touching stored data. This module is a snapshot:
it names every value it converts, and never imports the model it converts to.
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def _snake(name: str) -> str:
    return _CAMEL.sub(lambda m: "_" + m.group(1).lower(), name)


def _plain(value: str | None, prefix: str) -> str | None:
    """`NODE_STATUS_ACTIVE` -> `active`; a value without the prefix is left as it is."""
    if value is None or not value.startswith(prefix):
        return value
    return value[len(prefix) :].lower()


def _keys(obj: dict[str, Any]) -> dict[str, Any]:
    return {_snake(k): v for k, v in obj.items()}


def _health_event(event: dict[str, Any]) -> dict[str, Any]:
    # Only the event's own fields change; its metrics and details keep the names they were
    # reported with.
    out = _keys(event)
    out["type"] = _plain(out.get("type"), "HEALTH_EVENT_TYPE_")
    return out


def _metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    out = _keys(metrics)
    out["gpus"] = [_keys(g) for g in out.get("gpus", [])]
    return out


_DETAIL_PREFIXES = {
    "node.health_changed": {"from": "HEALTH_STATUS_", "to": "HEALTH_STATUS_"},
    "health.reported": {"types": "HEALTH_EVENT_TYPE_"},
    "command.issued": {"type": "COMMAND_TYPE_"},
    "command.acked": {"type": "COMMAND_TYPE_", "result": "COMMAND_RESULT_"},
}


def _details(kind: str, details: dict[str, str]) -> dict[str, str]:
    for key, prefix in _DETAIL_PREFIXES.get(kind, {}).items():
        if details.get(key):
            details[key] = ",".join(_plain(part, prefix) or "" for part in details[key].split(","))
    return details


def migrate(conn: sqlite3.Connection) -> None:
    nodes = conn.execute(
        "SELECT node_id, status, health, gpus, metrics, last_health_events FROM nodes"
    ).fetchall()
    conn.executemany(
        "UPDATE nodes SET status = ?, health = ?, gpus = ?, metrics = ?, last_health_events = ? "
        "WHERE node_id = ?",
        [
            (
                _plain(status, "NODE_STATUS_"),
                _plain(health, "HEALTH_STATUS_"),
                json.dumps([_keys(g) for g in json.loads(gpus)], separators=(",", ":")),
                None
                if metrics is None
                else json.dumps(_metrics(json.loads(metrics)), separators=(",", ":")),
                json.dumps([_health_event(e) for e in json.loads(events)], separators=(",", ":")),
                node_id,
            )
            for node_id, status, health, gpus, metrics, events in nodes
        ],
    )
    conn.execute(
        "UPDATE commands SET type = lower(substr(type, 14)) WHERE type LIKE 'COMMAND_TYPE_%'"
    )
    conn.execute(
        "UPDATE commands SET status = lower(substr(status, 16)) "
        "WHERE status LIKE 'COMMAND_STATUS_%'"
    )
    events = conn.execute(
        "SELECT event_id, kind, from_status, to_status, details FROM events"
    ).fetchall()
    conn.executemany(
        "UPDATE events SET from_status = ?, to_status = ?, details = ? WHERE event_id = ?",
        [
            (
                _plain(before, "NODE_STATUS_"),
                _plain(after, "NODE_STATUS_"),
                json.dumps(_details(kind, json.loads(details)), separators=(",", ":")),
                event_id,
            )
            for event_id, kind, before, after, details in events
        ],
    )
    reports = conn.execute("SELECT report_id, seq, type, body FROM health_events").fetchall()
    conn.executemany(
        "UPDATE health_events SET type = ?, body = ? WHERE report_id = ? AND seq = ?",
        [
            (
                _plain(kind, "HEALTH_EVENT_TYPE_"),
                json.dumps(_health_event(json.loads(body)), separators=(",", ":")),
                report_id,
                seq,
            )
            for report_id, seq, kind, body in reports
        ],
    )
    conn.execute(
        "UPDATE remediations SET step = lower(substr(step, 18)) "
        "WHERE step LIKE 'REMEDIATION_STEP_%'"
    )
