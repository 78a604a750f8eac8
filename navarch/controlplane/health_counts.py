"""What the health reports count for `/metrics`: reports by the types of their events, and XIDs by
code.

The control plane hands every committed event to `HealthCounts.observe` (a listener of the node
book); it counts the `health.reported` ones from their details, which name the report's event
types and its XIDs as `gpu:xid` pairs (`verdicts`). Types are HealthEventType's values, and XID
codes those of navarch's XID catalog (172 codes); anything else counts as `other`, so the labels
stay a bounded set whatever a daemon sends.
"""

from __future__ import annotations

import collections

from navarch.model import Event, HealthEventType
from navarch.telemetry.xid_catalog import lookup

TYPES = frozenset(t.value for t in HealthEventType)
OTHER = "other"


class HealthCounts:
    """Counts since the control plane started."""

    def __init__(self) -> None:
        # event type -> health reports that had events of the type
        self.reports: collections.Counter[str] = collections.Counter()
        # XID code -> GPUs that reported it, once a report
        self.xids: collections.Counter[str] = collections.Counter()

    def observe(self, event: Event) -> None:
        """Counts a `health.reported` event; returns at once and never raises, as a listener of
        the book must."""
        if event.kind != "health.reported":
            return
        details = event.details
        for kind in filter(None, details.get("types", "").split(",")):
            self.reports[kind if kind in TYPES else OTHER] += 1
        for pair in filter(None, details.get("xids", "").split(",")):
            code = pair.rpartition(":")[2]
            known = code.isdigit() and len(code) <= 6 and lookup(int(code)) is not None
            self.xids[str(int(code)) if known else OTHER] += 1
