"""The notifier contract, and the JSON document of an event that notifiers send.

The control plane hands every event it records to each notifier whose table the configuration
has (`[notifiers.NAME] type = "webhook"`). `notify` only queues: delivery runs in the notifier's
own task, so a slow or failing receiver never delays or undoes what the event records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from navarch.clock import format_timestamp
from navarch.model import Event


class Notifier(Protocol):
    def notify(self, event: Event) -> None:
        """Queues `event` for delivery; never blocks and never raises."""

    async def run(self) -> None:
        """Delivers the queued events until cancelled."""


# Event kind -> detail key -> the prefix of the wire name of the status or type it holds.
_WIRE_DETAILS: Mapping[str, Mapping[str, str]] = {
    "node.health_changed": {"from": "HEALTH_STATUS_", "to": "HEALTH_STATUS_"},
    "health.reported": {"types": "HEALTH_EVENT_TYPE_"},
    "command.issued": {"type": "COMMAND_TYPE_"},
    "command.acked": {"type": "COMMAND_TYPE_", "result": "COMMAND_RESULT_"},
}


def wire_details(kind: str, details: Mapping[str, str]) -> dict[str, str]:
    """An event's details as the API writes them: statuses and types by their wire names
    (`HEALTH_STATUS_UNHEALTHY`), lists of them comma-separated."""
    prefixes = _WIRE_DETAILS.get(kind)
    if not prefixes:
        return dict(details)
    out = dict(details)
    for key, prefix in prefixes.items():
        value = out.get(key)
        if value:
            out[key] = ",".join(prefix + part.upper() for part in value.split(","))
    return out


def event_document(event: Event) -> dict[str, Any]:
    """The event as the API's `Event` message writes it in JSON: lowerCamelCase keys, statuses
    by their wire names, RFC 3339 times, and empty fields left out."""
    document: dict[str, Any] = {
        "eventId": event.event_id,
        "time": format_timestamp(event.time),
        "kind": event.kind,
    }
    if event.node_id:
        document["nodeId"] = event.node_id
    if event.actor:
        document["actor"] = event.actor
    if event.reason:
        document["reason"] = event.reason
    if event.from_status is not None:
        document["fromStatus"] = "NODE_STATUS_" + event.from_status.name
    if event.to_status is not None:
        document["toStatus"] = "NODE_STATUS_" + event.to_status.name
    if event.details:
        document["details"] = wire_details(event.kind, event.details)
    return document
