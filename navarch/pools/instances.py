"""Instance tracking: every instance a pool asked a provider for, from the request to its end.

An instance record moves through these statuses:

```
 PROVISIONING ──▶ REGISTERING ──▶ RUNNING ──▶ TERMINATING ──▶ TERMINATED
      │                │             │
      └────────────────┴─────────────┴──────▶ FAILED  (provider error, lost, never registered)
```

The records live in the store, so a restarted control plane still knows every instance it made
and reconciles them against what the providers list.
"""

from __future__ import annotations

import enum
from datetime import datetime

from attrs import frozen


class InstanceStatus(enum.Enum):
    # Asked of the provider, not yet answered with an instance id.
    PROVISIONING = "provisioning"
    # The provider made it; its daemon has not registered as a node yet.
    REGISTERING = "registering"
    # Its daemon registered; the node id is the instance id.
    RUNNING = "running"
    TERMINATING = "terminating"
    TERMINATED = "terminated"
    # Never came up, or the provider lost it.
    FAILED = "failed"


# Counted as the pool's instances in flight: asked for, but not yet a node.
IN_FLIGHT = frozenset({InstanceStatus.PROVISIONING, InstanceStatus.REGISTERING})
# The instance exists, or may exist, at the provider.
LIVE = frozenset(
    {
        InstanceStatus.PROVISIONING,
        InstanceStatus.REGISTERING,
        InstanceStatus.RUNNING,
        InstanceStatus.TERMINATING,
    }
)


@frozen(kw_only=True)
class InstanceRecord:
    instance_id: str
    # The `[providers.NAME]` table that made it.
    provider: str
    pool: str
    status: InstanceStatus
    region: str = ""
    zone: str = ""
    instance_type: str = ""
    # Why it has its status ("scale up", "never registered within 10m", ...).
    reason: str = ""
    node_id: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.provider, self.instance_id)
