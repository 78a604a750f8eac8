"""How much each kind of event matters to the people on call: the one table notifiers route by.

`EVENT_SEVERITIES` names every event kind the control plane records and its severity. A node's
status or health change takes the severity of where the node went (`severity_of`): a node that
turns unhealthy is critical, one that comes back is not. docs/notifications.md shows the table.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from navarch.model import Event


class Severity(enum.Enum):
    """How urgently an event needs a person, from INFO up to CRITICAL."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for INFO up to 2 for CRITICAL."""
        return _RANK[self]


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}

INFO, WARNING, CRITICAL = Severity.INFO, Severity.WARNING, Severity.CRITICAL

EVENT_SEVERITIES: Mapping[str, Severity] = {
    "node.registered": INFO,
    "node.reregistered": INFO,
    "node.taken_over": WARNING,
    "node.registration_refused": WARNING,
    "node.status_changed": INFO,  # CRITICAL when the node becomes unhealthy
    "node.health_changed": INFO,  # WARNING to degraded, CRITICAL to unhealthy
    "node.heartbeat_resumed": INFO,
    "node.preemption_notice": WARNING,
    "node.preempted": WARNING,
    "node.preflight_passed": INFO,
    "node.preflight_failed": WARNING,
    "health.reported": INFO,
    "health.alert": WARNING,
    "health.action_required": CRITICAL,
    "command.issued": INFO,
    "command.acked": INFO,
    "remediation.started": WARNING,
    "remediation.step": INFO,
    "remediation.step_failed": WARNING,
    "remediation.held": CRITICAL,
    "remediation.completed": INFO,
    "remediation.cancelled": INFO,
    "remediation.breaker_opened": CRITICAL,
    "remediation.breaker_reset": INFO,
    "remediation.paused": INFO,
    "remediation.resumed": INFO,
    "pool.scaled": INFO,
    "pool.decision": INFO,
    "pool.manual_target": INFO,
    "pool.provision_failed": WARNING,
    "pool.spot_fallback": WARNING,
    "instance.provisioning": INFO,
    "instance.provisioned": INFO,
    "instance.registering": INFO,
    "instance.running": INFO,
    "instance.adopted": INFO,
    "instance.bootstrap_failed": WARNING,
    "instance.terminating": INFO,
    "instance.terminated": INFO,
    "instance.failed": WARNING,
}

# The kinds whose severity is that of where the node went, by the status it went to.
_BY_DESTINATION: Mapping[str, Mapping[str, Severity]] = {
    "node.status_changed": {"unhealthy": CRITICAL},
    "node.health_changed": {"degraded": WARNING, "unhealthy": CRITICAL},
}


def severity_of(event: Event) -> Severity:
    """The event's severity: its kind's, raised by where the node went for a status or health
    change. A kind the table does not know is INFO."""
    base = EVENT_SEVERITIES.get(event.kind, INFO)
    destinations = _BY_DESTINATION.get(event.kind)
    if destinations is None:
        return base
    if event.kind == "node.status_changed":
        went = event.to_status.value if event.to_status is not None else ""
    else:
        went = event.details.get("to", "")
    return destinations.get(went, base)
