"""The node state machine: which status each action leads to, from each status.

```
            register                         cordon                   drain
 (none) ───────────────▶ ACTIVE ◀────────▶ CORDONED ─────────▶ DRAINING ──▶ DRAINED
                          │  ▲  uncordon                                       │
         heartbeat lost   │  │ uncordon with force=true              terminate │
                          ▼  │                                                 ▼
                        UNHEALTHY ─────────── drain, terminate ──────────▶ TERMINATED
```

An action that finds the node already where it would lead (cordon on a drained node, uncordon on
an active one) changes nothing and succeeds, so retries are safe. An action that makes no sense from
the node's status is refused with `failed_precondition` and changes nothing. An unhealthy node never
returns to service on its own: uncordon takes it back only when the operator says `force`. A node
becomes unhealthy when its heartbeats stop or when the health policy judges it unhealthy.
"""

from __future__ import annotations

from navarch.errors import Conflict
from navarch.model import NodeStatus

ACTIVE = NodeStatus.ACTIVE
CORDONED = NodeStatus.CORDONED
DRAINING = NodeStatus.DRAINING
DRAINED = NodeStatus.DRAINED
UNHEALTHY = NodeStatus.UNHEALTHY
TERMINATED = NodeStatus.TERMINATED

_LIVE = (ACTIVE, CORDONED, DRAINING, DRAINED, UNHEALTHY)

# action -> {from status: to status}; a status missing from an action's map refuses the action.
TRANSITIONS: dict[str, dict[NodeStatus, NodeStatus]] = {
    # Every status but ACTIVE is already out of service, and stays as it is.
    "cordon": {
        ACTIVE: CORDONED,
        CORDONED: CORDONED,
        DRAINING: DRAINING,
        DRAINED: DRAINED,
        UNHEALTHY: UNHEALTHY,
    },
    "uncordon": {ACTIVE: ACTIVE, CORDONED: ACTIVE, DRAINING: ACTIVE, DRAINED: ACTIVE},
    "force_uncordon": dict.fromkeys(_LIVE, ACTIVE),
    "drain": {
        ACTIVE: DRAINING,
        CORDONED: DRAINING,
        UNHEALTHY: DRAINING,
        DRAINING: DRAINING,
        DRAINED: DRAINED,
    },
    "drain_succeeded": {DRAINING: DRAINED},
    "terminate": {s: s for s in _LIVE},
    "terminate_succeeded": dict.fromkeys(_LIVE, TERMINATED),
    "run_diagnostic": {s: s for s in _LIVE},
    # A GPU is reset only on a node with no work left on it.
    "reset_gpu": {DRAINED: DRAINED},
    # A reboot takes a node out of service first: never an active one.
    "reboot": {CORDONED: CORDONED, DRAINED: DRAINED, UNHEALTHY: UNHEALTHY},
    # The health policy judged the node unhealthy; a node already draining finishes its drain.
    "health_failed": {
        ACTIVE: UNHEALTHY,
        CORDONED: UNHEALTHY,
        DRAINING: DRAINING,
        DRAINED: DRAINED,
        UNHEALTHY: UNHEALTHY,
    },
    "heartbeat_lost": {
        ACTIVE: UNHEALTHY,
        CORDONED: UNHEALTHY,
        DRAINING: UNHEALTHY,
        DRAINED: UNHEALTHY,
    },
}


def next_status(action: str, node_id: str, status: NodeStatus) -> NodeStatus:
    """The status `action` leads to; raises Conflict when it is not allowed."""
    to = TRANSITIONS[action].get(status)
    if to is not None:
        return to
    if status is TERMINATED:
        raise Conflict(f"node {node_id} is terminated")
    if action == "uncordon" and status is UNHEALTHY:
        raise Conflict(
            f"node {node_id} is unhealthy; uncordon it with the parameter force=true to return "
            "it to service anyway"
        )
    raise Conflict(f"cannot {action.replace('_', ' ')} node {node_id}: it is {status.value}")
