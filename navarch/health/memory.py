"""What the judge holds of one node, as a value that outlives the process.

A restarted control plane that forgot a node's events would judge its next report without the
history the rules count over, and would let an XID 79 of a minute ago leave the window at once.
The judge therefore hands out a node's memory (`HealthJudge.memory`) for the control plane to
store with the report that changed it, and takes it back at start (`HealthJudge.restore`).

Times are wall-clock times here: the judge counts in trio's time, which starts over with every
process, and the caller converts.
"""

from __future__ import annotations

from datetime import datetime

from attrs import frozen

from navarch.health.policy import Action, Result
from navarch.model import HealthEvent


@frozen(kw_only=True)
class SeenEvent:
    """An event of the node's history, and when the judge saw it."""

    at: datetime
    event: HealthEvent


@frozen(kw_only=True)
class KeptMatch:
    """A match the window still holds: the latest of its (result, action) on its GPU."""

    at: datetime
    event: HealthEvent
    result: Result
    action: Action
    rule: str = ""


@frozen(kw_only=True)
class JudgeMemory:
    # Oldest first, as the rules see `history`.
    history: tuple[SeenEvent, ...] = ()
    worst: tuple[KeptMatch, ...] = ()
