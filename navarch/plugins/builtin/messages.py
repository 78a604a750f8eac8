"""What the Slack and PagerDuty notifiers say about an event: a one-line summary, and the
dashboard pages that show what it is about.

The links point at the dashboard the control plane serves under `/ui/`; `dashboard_url` is the
address people open it at (the control plane's `[server] external_url`), and empty means no
links.
"""

from __future__ import annotations

from urllib.parse import quote

from navarch.plugins import Event


def summary(event: Event) -> str:
    """`remediation.started on node gpu-1 (pool train): judged for replacement`."""
    pool = event.details.get("pool", "")
    text = event.kind
    if event.node_id:
        text += f" on node {event.node_id}"
        if pool:
            text += f" (pool {pool})"
    elif pool:
        text += f" in pool {pool}"
    change = status_change(event)
    if change:
        text += f": {change}"
    if event.reason:
        text += f"{',' if change else ':'} {event.reason}"
    return text


def status_change(event: Event) -> str:
    """`active → unhealthy` for a status or health change; empty for other events."""
    if event.from_status is not None or event.to_status is not None:
        before = event.from_status.value if event.from_status is not None else "none"
        after = event.to_status.value if event.to_status is not None else "none"
        return f"{before} → {after}"
    if event.kind == "node.health_changed":
        return f"health {event.details.get('from', '?')} → {event.details.get('to', '?')}"
    return ""


def links(event: Event, dashboard_url: str) -> list[tuple[str, str]]:
    """(address, text) of the dashboard pages about the event: its node's page, and the
    remediations page for a remediation event."""
    if not dashboard_url:
        return []
    base = dashboard_url.rstrip("/")
    found = []
    if event.node_id:
        found.append((f"{base}/ui/nodes/{quote(event.node_id, safe='')}", f"Node {event.node_id}"))
    if event.kind.startswith("remediation."):
        found.append((f"{base}/ui/remediations", "Remediations"))
    return found


def about(event: Event) -> str:
    """What a post is about, for log lines: `remediation.started for gpu-1`."""
    subject = event.node_id or event.details.get("pool", "")
    return f"{event.kind} for {subject}" if subject else event.kind
